package vendortest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tap records, with the kernel's own timestamps, every call that reaches
// a vendor's port on loopback and the status of the answer it got: a
// witness independent of both the caller and the vendor.
//
// nginx's limit_req stamps a call when its event loop gets to it, not
// when the call arrived. On a shared host a vendor descheduled for a few
// milliseconds (another process, or the hypervisor taking the CPU)
// stamps a call late and then refuses the next one as too early, though
// the two arrived further apart than its interval. Only the wire tells
// such a refusal from one the caller earned.
type Tap struct {
	port int
	path string
	cmd  *exec.Cmd
}

// WireCall is one request seen on the wire, and the status its answer
// carried (0 when no answer was seen).
type WireCall struct {
	At     time.Time
	Status int
}

// Tap starts recording the calls to nginx's port with tcpdump. Under
// CI=true a missing tcpdump (or one not allowed to capture) fails the
// test; elsewhere Tap returns nil and refusals go unexplained.
func (n *Nginx) Tap(t testing.TB) *Tap {
	t.Helper()
	port, err := strconv.Atoi(n.URL[strings.LastIndexByte(n.URL, ':')+1:])
	if err != nil {
		t.Fatalf("nginx URL %q: %v", n.URL, err)
	}
	tp, err := startTap(t.TempDir(), port)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the wire witness for nginx's refusals: %v (apt-get install tcpdump; run as root)", err)
		}
		t.Logf("no wire witness for nginx's refusals (%v): every refusal counts against the caller", err)
		return nil
	}
	t.Cleanup(tp.stop)
	return tp
}

// startTap runs tcpdump on loopback for TCP segments with a payload to
// or from port, and waits until it captures.
func startTap(dir string, port int) (*Tap, error) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, err
	}
	tp := &Tap{port: port, path: filepath.Join(dir, "vendor.pcap")}
	// Packets with a TCP payload only: the IP length less both headers.
	// And the datagrams Calls sends to that port as its mark.
	filter := fmt.Sprintf("(tcp port %d and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)) or (udp dst port %d)", port, port)
	tp.cmd = exec.Command(bin, "-i", "lo", "-nn", "-U", "--immediate-mode", "-Z", "root", "-s", "256", "-w", tp.path, filter) //nolint:gosec // tcpdump found on PATH, the test's own filter
	stderr, err := tp.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := tp.cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var said []string
		for sc.Scan() {
			said = append(said, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				listening <- nil
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		listening <- fmt.Errorf("tcpdump: %s", strings.Join(said, "; "))
	}()
	select {
	case err = <-listening:
	case <-time.After(10 * time.Second):
		err = errors.New("tcpdump did not start capturing within 10 s")
	}
	if err != nil {
		tp.stop()
		return nil, err
	}
	return tp, nil
}

// stop ends tcpdump, which writes out what it holds.
func (tp *Tap) stop() {
	if tp.cmd == nil {
		return
	}
	_ = tp.cmd.Process.Signal(syscall.SIGINT)
	_ = tp.cmd.Wait()
	tp.cmd = nil
}

// Calls stops the capture and returns the calls it saw, in the order
// they reached the vendor.
//
// tcpdump stops reading at SIGINT and drops what the kernel still holds
// for it, so an answer sent just before Calls (its caller already has
// it) could be missing from the file though it crossed the wire. Calls
// first sends a mark, a UDP datagram to the vendor's port, and waits (at
// most markWait) until the file holds it: loopback captures in the order
// packets are sent, so everything before the mark is in the file too.
func (tp *Tap) Calls(t testing.TB) []WireCall {
	t.Helper()
	if err := tp.mark(); err != nil {
		t.Fatalf("marking the capture: %v", err)
	}
	tp.stop()
	segs, err := tp.read()
	if err != nil {
		t.Fatal(err)
	}
	return pairCalls(segs, tp.port)
}

// markWait bounds how long Calls waits for its mark to reach the file.
const markWait = 5 * time.Second

// mark sends the mark and waits until tcpdump has written it.
func (tp *Tap) mark() error {
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tp.port)))
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte("seawall tap mark")); err != nil {
		return err
	}
	for deadline := time.Now().Add(markWait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		// tcpdump -U writes each packet whole as it takes it; a read
		// between two writes may end mid-record, and is tried again.
		segs, err := tp.read()
		if err == nil && slices.ContainsFunc(segs, func(s segment) bool { return s.udp && int(s.dst) == tp.port }) {
			return nil
		}
	}
	return fmt.Errorf("tcpdump had not written a datagram sent to port %d after %s", tp.port, markWait)
}

// read reads the capture file as it stands.
func (tp *Tap) read() ([]segment, error) {
	b, err := os.ReadFile(tp.path)
	if err != nil {
		return nil, err
	}
	segs, err := readPcap(b)
	if err != nil {
		return nil, fmt.Errorf("reading the capture: %w", err)
	}
	return segs, nil
}

// pairCalls matches each request to the vendor's port with the answer
// that followed it on the same connection (callers here do not
// pipeline).
func pairCalls(segs []segment, port int) []WireCall {
	type flow struct{ client uint16 }
	var calls []WireCall
	waiting := map[flow][]int{} // indexes into calls, oldest first
	for _, s := range segs {
		switch {
		case s.udp:
		case int(s.dst) == port && startsRequest(s.payload):
			f := flow{s.src}
			waiting[f] = append(waiting[f], len(calls))
			calls = append(calls, WireCall{At: s.at})
		case int(s.src) == port && bytes.HasPrefix(s.payload, []byte("HTTP/1.")) && len(s.payload) >= 12:
			f := flow{s.dst}
			if q := waiting[f]; len(q) > 0 {
				code, _ := strconv.Atoi(string(s.payload[9:12]))
				calls[q[0]].Status = code
				waiting[f] = q[1:]
			}
		}
	}
	return calls
}

// startsRequest says a payload begins an HTTP/1.1 request: a method
// token, a space, then a path.
func startsRequest(p []byte) bool {
	method, _, ok := bytes.Cut(p, []byte(" /"))
	if !ok || len(method) == 0 || len(method) > 10 {
		return false
	}
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Refusals judges each refusal (429) on the wire by the gap between its
// arrival and that of the call the vendor served before it: under
// interval, the caller sent it too soon; at interval or more, the
// vendor's clock stamped one of the two late. It returns both lists as
// text, and how many refusals it judged.
func Refusals(calls []WireCall, interval time.Duration) (tooSoon, stampedLate []string, n int) {
	for _, r := range Judge(calls, interval) {
		n++
		switch {
		case r.Gap == 0:
			stampedLate = append(stampedLate, "the first call")
		case r.TooSoon:
			tooSoon = append(tooSoon, r.Gap.Round(10*time.Microsecond).String())
		default:
			stampedLate = append(stampedLate, r.Gap.Round(10*time.Microsecond).String())
		}
	}
	return tooSoon, stampedLate, n
}

// Refusal is a refusal (429) seen on the wire, judged.
type Refusal struct {
	At time.Time
	// Gap is the time since the arrival of the call the vendor served
	// before it; 0 when it served none before.
	Gap time.Duration
	// TooSoon says the gap was under the vendor's interval: the caller
	// sent it too soon. Otherwise the vendor's clock stamped one of the
	// two calls late.
	TooSoon bool
}

// Judge judges each refusal on the wire against the vendor's interval,
// in the order they reached it.
func Judge(calls []WireCall, interval time.Duration) []Refusal {
	var out []Refusal
	var last time.Time
	for _, c := range calls {
		switch {
		case c.Status == 429 && last.IsZero():
			out = append(out, Refusal{At: c.At})
		case c.Status == 429:
			gap := c.At.Sub(last)
			out = append(out, Refusal{At: c.At, Gap: gap, TooSoon: gap < interval})
		case c.Status/100 == 2:
			last = c.At
		}
	}
	return out
}

// SmallestGap is the smallest gap on the wire between two calls the
// vendor served; 0 with fewer than two.
func SmallestGap(calls []WireCall) time.Duration {
	var gaps []time.Duration
	var last time.Time
	for _, c := range calls {
		if c.Status/100 != 2 {
			continue
		}
		if !last.IsZero() {
			gaps = append(gaps, c.At.Sub(last))
		}
		last = c.At
	}
	if len(gaps) == 0 {
		return 0
	}
	return slices.Min(gaps)
}

// CheckRefusals fails t unless each of the refused calls nginx's log
// counted reached nginx, by the wire (tap), at least nginx's interval
// after the call it served before: a refusal the caller could not have
// avoided by spacing its calls. Without a tap every refusal fails t.
// what describes the refusals from nginx's log, for the failure.
func (n *Nginx) CheckRefusals(t testing.TB, tap *Tap, refused int, what string) {
	t.Helper()
	if refused == 0 {
		return
	}
	if tap == nil {
		t.Errorf("nginx refused %d calls: %s", refused, what)
		return
	}
	calls := tap.Calls(t)
	interval := time.Second / time.Duration(n.Rate)
	tooSoon, late, judged := Refusals(calls, interval)
	switch {
	case judged < refused:
		t.Errorf("nginx refused %d calls (%s); the wire saw %d refusals, too few to judge them", refused, what, judged)
	case len(tooSoon) > 0:
		t.Errorf("nginx refused %d calls (%s); on the wire, %d came sooner than its %s interval after the call it served before: %v",
			refused, what, len(tooSoon), interval, tooSoon)
	default:
		t.Logf("nginx refused %d calls (%s), each of which reached it, by the wire, at least its %s interval after the call it served before (%v): nginx stamped one of the two late. On the wire, no two served calls came closer than %s",
			refused, what, interval, late, SmallestGap(calls).Round(10*time.Microsecond))
	}
}

// segment is one captured TCP segment with a payload.
type segment struct {
	at       time.Time
	src, dst uint16
	payload  []byte
	// udp says a UDP datagram (the tap's mark), not a TCP segment.
	udp bool
}

// Link types readPcap knows: Ethernet (Linux's loopback) and raw IP.
const (
	linkEthernet = 1
	linkRaw      = 101
)

// readPcap reads a classic pcap file of IPv4 TCP segments, as tcpdump
// writes it. Anything else in it (another protocol, a short frame) is
// skipped; a malformed file is an error.
func readPcap(b []byte) ([]segment, error) {
	if len(b) < 24 {
		return nil, errors.New("no pcap header")
	}
	var order binary.ByteOrder
	nano := false
	for _, o := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		switch o.Uint32(b) {
		case 0xa1b2c3d4:
			order = o
		case 0xa1b23c4d:
			order, nano = o, true
		}
		if order != nil {
			break
		}
	}
	if order == nil {
		return nil, errors.New("not a pcap file")
	}
	link := order.Uint32(b[20:])
	if link != linkEthernet && link != linkRaw {
		return nil, fmt.Errorf("link type %d", link)
	}
	var segs []segment
	for b = b[24:]; len(b) > 0; {
		if len(b) < 16 {
			return nil, errors.New("truncated record header")
		}
		secs, frac, incl := order.Uint32(b), order.Uint32(b[4:]), order.Uint32(b[8:])
		if int64(incl) > int64(len(b)-16) {
			return nil, errors.New("truncated record")
		}
		frame := b[16 : 16+incl]
		b = b[16+incl:]
		nsec := int64(frac) * 1000
		if nano {
			nsec = int64(frac)
		}
		if link == linkEthernet {
			if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
				continue
			}
			frame = frame[14:]
		}
		if s, ok := ipSegment(frame); ok {
			s.at = time.Unix(int64(secs), nsec)
			segs = append(segs, s)
		}
	}
	return segs, nil
}

// ipSegment reads an IPv4 packet's TCP ports and payload (as far as
// captured), or a UDP datagram's ports.
func ipSegment(ip []byte) (segment, bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 || (ip[9] != syscall.IPPROTO_TCP && ip[9] != syscall.IPPROTO_UDP) {
		return segment{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] == syscall.IPPROTO_UDP {
		if ihl < 20 || len(ip) < ihl+8 {
			return segment{}, false
		}
		return segment{src: binary.BigEndian.Uint16(ip[ihl:]), dst: binary.BigEndian.Uint16(ip[ihl+2:]), udp: true}, true
	}
	if ihl < 20 || len(ip) < ihl+20 {
		return segment{}, false
	}
	tcp := ip[ihl:]
	off := int(tcp[12]>>4) * 4
	if off < 20 || len(tcp) < off {
		return segment{}, false
	}
	return segment{src: binary.BigEndian.Uint16(tcp), dst: binary.BigEndian.Uint16(tcp[2:]), payload: tcp[off:]}, true
}
