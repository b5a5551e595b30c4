package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// writeUpstreamCert writes a self-signed certificate for localhost and
// 127.0.0.1, and its key, into dir as upstream.crt and upstream.key: the
// HTTPS upstream's, which every proxy is told to trust.
func writeUpstreamCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// Readable by nginx's and HAProxy's workers, which may run as another
	// user: a throwaway key for loopback.
	if err := os.WriteFile(filepath.Join(dir, "upstream.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil { //nolint:gosec // see above
		return err
	}
	return os.WriteFile(filepath.Join(dir, "upstream.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o644) //nolint:gosec // see above
}

// postgresStore makes a schema of its own for the (e) row on PostgreSQL
// and returns the store's DSN and a function that drops the schema. The
// server is BENCH_POSTGRES, by default the machine's local one.
func postgresStore() (string, func(), error) {
	base := os.Getenv("BENCH_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL for the (e) row (BENCH_POSTGRES): %w", err)
	}
	schema := fmt.Sprintf("seawall_bench_%d", os.Getpid())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = conn.Close(ctx)
		return "", nil, err
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(ctx)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, drop, nil
}

// mallocs reads Seawall's count of heap allocations so far from its admin
// listener's metrics (go_memstats_mallocs_total), or -1.
func mallocs(adminPort int) float64 { return scrape(adminPort, "go_memstats_mallocs_total")[0] }

// scrape reads unlabelled samples from Seawall's admin listener's
// metrics, by name; -1 for each it could not read.
func scrape(adminPort int, names ...string) []float64 {
	out := make([]float64, len(names))
	for i := range out {
		out[i] = -1
	}
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort), nil)
	if err != nil {
		return out
	}
	req.Header.Set("Authorization", "Bearer "+benchAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if i := slices.Index(names, name); ok && i >= 0 {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				out[i] = n
			}
		}
	}
	return out
}

// groupCommit is what Seawall's own metrics say of the job store's
// group commit over a measurement: enqueues per committed transaction,
// transactions a second, and a transaction's mean time.
type groupCommit struct {
	batch, perSec float64
	mean          time.Duration
}

// groupCommitMetrics are the samples groupCommitOver reads.
var groupCommitMetrics = []string{
	"seawall_job_enqueue_batch_size_sum", "seawall_job_enqueue_batch_size_count", "seawall_job_enqueue_commit_seconds_sum",
}

// groupCommitOver is the group commit between two scrapes of
// groupCommitMetrics d apart; zero if either failed or nothing committed.
func groupCommitOver(before, after []float64, d time.Duration) groupCommit {
	if slices.Contains(before, -1) || slices.Contains(after, -1) {
		return groupCommit{}
	}
	jobs, txs, secs := after[0]-before[0], after[1]-before[1], after[2]-before[2]
	if txs <= 0 {
		return groupCommit{}
	}
	return groupCommit{batch: jobs / txs, perSec: txs / d.Seconds(), mean: time.Duration(secs / txs * float64(time.Second))}
}

// syscallsPerRequest runs the closed-loop load at url for d with strace
// counting the system calls of pid and its threads, and returns calls per
// request served and the counts by call. strace slows the process it
// watches; the count per request is what it is for, not the rate.
func syscallsPerRequest(t *target, url string, conns int, d time.Duration) (float64, string, error) {
	out := filepath.Join(t.dir, "strace-"+t.name+".txt")
	args := []string{"-c", "-f", "-o", out}
	for _, pid := range tree(t.proc.Process.Pid) { // nginx's worker too
		args = append(args, "-p", strconv.Itoa(pid))
	}
	cmd := exec.Command("strace", args...)
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("strace: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // attached to every thread
	m := measureClosed(t, "GET", url, conns, d)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if m.err != nil {
		return 0, "", m.err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return 0, "", err
	}
	total, by := 0.0, []string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" {
			continue
		}
		calls, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		total += calls
		if per := calls / (m.rps * d.Seconds()); per >= 0.05 {
			by = append(by, fmt.Sprintf("%s %.2f", f[len(f)-1], per))
		}
	}
	requests := m.rps * d.Seconds()
	if requests == 0 {
		return 0, "", fmt.Errorf("no requests served under strace")
	}
	return total / requests, strings.Join(by, ", "), nil
}
