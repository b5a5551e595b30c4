package main

import (
	"net/http"
	"sync"
	"time"
)

// appLoad is app traffic for a test: workers each GET url(w, i) for their
// i-th call, gap apart, until halt is called or limit passes; done, if not
// nil, sees each result. halt waits for the workers, and may be called
// more than once.
func appLoad(workers int, gap, limit time.Duration, url func(w, i int) string, done func(w, i int, resp *http.Response, err error)) (halt func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				case <-time.After(gap):
				}
				resp, err := client.Get(url(w, i))
				if done != nil {
					done(w, i, resp, err)
				}
				if err == nil {
					_ = resp.Body.Close()
				}
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		wg.Wait()
	}
}
