package vendortest

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// The tap tells a refusal the caller earned from one nginx's late clock
// made. nginx at 20/s: two calls 5 ms apart, the second refused, sent too
// soon by the wire; then, with nginx stopped (SIGSTOP, as a host that
// takes its CPU away), two calls 80 ms apart, which nginx reads together
// once it runs again and stamps alike: the second is refused though it
// came more than the interval after the first.
func TestTapTellsALateStampFromACallSentTooSoon(t *testing.T) {
	vendor := StartNginx(t, 20)
	tap := vendor.Tap(t)
	if tap == nil {
		t.Skip("tcpdump cannot capture here (CI=true fails instead)")
	}
	get := func(done chan<- int) {
		// A connection of its own each, as separate replicas' calls.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(vendor.URL + "/ok.json")
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}
	done := make(chan int, 4)
	get(done)
	time.Sleep(5 * time.Millisecond)
	get(done)
	if a, b := <-done, <-done; a != 200 || b != 429 {
		t.Fatalf("nginx answered %d, %d to two calls 5 ms apart; want 200, 429", a, b)
	}
	time.Sleep(200 * time.Millisecond)
	if err := vendor.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	go get(done)
	time.Sleep(80 * time.Millisecond)
	go get(done)
	time.Sleep(100 * time.Millisecond)
	if err := vendor.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	got[<-done]++
	got[<-done]++
	if got[200] != 1 || got[429] != 1 {
		t.Fatalf("nginx answered %v to two calls 80 ms apart that it read together; want one 200 and one 429", got)
	}
	calls := tap.Calls(t)
	if len(calls) != 4 {
		t.Fatalf("the tap saw %d calls, want 4: %+v", len(calls), calls)
	}
	tooSoon, late, n := Refusals(calls, 50*time.Millisecond)
	if n != 2 || len(tooSoon) != 1 || len(late) != 1 {
		t.Fatalf("judged %d refusals: too soon %v, stamped late %v; want one of each", n, tooSoon, late)
	}
	if gap := calls[3].At.Sub(calls[2].At); gap < 70*time.Millisecond {
		t.Errorf("the wire put the frozen vendor's two calls %s apart; they were sent 80 ms apart", gap)
	}
	t.Logf("too soon: %v; stamped late: %v", tooSoon, late)
}

// The tap holds an answer its caller already has though tcpdump had not
// taken it when the test asked for the calls: tcpdump is held stopped
// (SIGSTOP, as a host that has not scheduled it yet) through a whole
// call and let go only after Calls has begun.
func TestTapHoldsAnAnswerTcpdumpHadNotTaken(t *testing.T) {
	vendor := StartNginx(t, 20)
	tap := vendor.Tap(t)
	if tap == nil {
		t.Skip("tcpdump cannot capture here (CI=true fails instead)")
	}
	if err := tap.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(vendor.URL + "/ok.json")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	p := tap.cmd.Process
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = p.Signal(syscall.SIGCONT)
	}()
	calls := tap.Calls(t)
	if len(calls) != 1 || calls[0].Status != resp.StatusCode {
		t.Fatalf("the tap saw %+v; want the one call, answered %d", calls, resp.StatusCode)
	}
}

// A capture file is outside input to the tap's reader: whatever it holds,
// reading it returns segments or an error, never a panic.
func FuzzReadPcap(f *testing.F) {
	f.Add(pcapOf(segmentFrame(40000, 8080, []byte("GET / HTTP/1.1\r\n\r\n"))))
	f.Add(pcapOf(segmentFrame(8080, 40000, []byte("HTTP/1.1 429 Too Many Requests\r\n"))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		segs, err := readPcap(b)
		if err != nil && len(segs) != 0 {
			t.Fatalf("segments %v with error %v", segs, err)
		}
		_ = pairCalls(segs, 8080)
	})
}

// The reader finds the ports, payload and time of a segment tcpdump
// wrote, and pairCalls matches a request with its answer.
func TestReadPcap(t *testing.T) {
	b := pcapOf(segmentFrame(40000, 8080, []byte("GET /ok.json HTTP/1.1\r\n\r\n")),
		segmentFrame(8080, 40000, []byte("HTTP/1.1 429 Too Many Requests\r\n")),
		datagramFrame(40001, 8080))
	segs, err := readPcap(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 3 || !segs[2].udp || segs[2].dst != 8080 || segs[0].udp || segs[0].src != 40000 || segs[0].dst != 8080 || !bytes.HasPrefix(segs[0].payload, []byte("GET /ok")) {
		t.Fatalf("segments %+v", segs)
	}
	calls := pairCalls(segs, 8080)
	if len(calls) != 1 || calls[0].Status != 429 || calls[0].At.Unix() != 1700000000 {
		t.Fatalf("calls %+v", calls)
	}
	if _, err := readPcap(b[:len(b)-3]); err == nil {
		t.Error("a truncated record read without error")
	}
	if _, err := readPcap(bytes.Repeat([]byte{0}, 24)); err == nil {
		t.Error("a file without the pcap magic read without error")
	}
}

// pcapOf is a pcap file (microseconds, Ethernet) of frames, one a
// millisecond from 1700000000 s.
func pcapOf(frames ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h, 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], linkEthernet)
	b.Write(h)
	for i, fr := range frames {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r, 1700000000)
		binary.LittleEndian.PutUint32(r[4:], uint32(i*1000))   //nolint:gosec // a handful of frames
		binary.LittleEndian.PutUint32(r[8:], uint32(len(fr)))  //nolint:gosec // small frames
		binary.LittleEndian.PutUint32(r[12:], uint32(len(fr))) //nolint:gosec // small frames
		b.Write(r)
		b.Write(fr)
	}
	return b.Bytes()
}

// segmentFrame is an Ethernet frame of an IPv4 TCP segment from port src
// to dst carrying payload.
func segmentFrame(src, dst uint16, payload []byte) []byte {
	fr := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(fr[12:], 0x0800)
	ip := fr[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+len(payload))) //nolint:gosec // small payloads
	ip[9] = syscall.IPPROTO_TCP
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp, src)
	binary.BigEndian.PutUint16(tcp[2:], dst)
	tcp[12] = 5 << 4
	return append(fr, payload...)
}

// datagramFrame is an Ethernet frame of an IPv4 UDP datagram from port
// src to dst, as the tap's mark.
func datagramFrame(src, dst uint16) []byte {
	fr := make([]byte, 14+20+8)
	binary.BigEndian.PutUint16(fr[12:], 0x0800)
	ip := fr[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 28)
	ip[9] = syscall.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[20:], src)
	binary.BigEndian.PutUint16(ip[22:], dst)
	return fr
}
