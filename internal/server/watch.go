package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// Watch calls changed whenever the content of the file at path changes,
// looking every interval until ctx ends. It compares content, not times:
// editors that write a new file and rename it over the old one, and
// config managers that rewrite it unchanged, are both seen right.
func Watch(ctx context.Context, path string, interval time.Duration, changed func()) {
	sum := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a file being replaced: look again next time
		}
		h := sha256.Sum256(b)
		return h[:]
	}
	last := sum()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := sum(); now != nil && !bytes.Equal(now, last) {
			last = now
			changed()
		}
	}
}
