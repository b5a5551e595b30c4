package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// Watch calls changed whenever the content of the config file at path
// changes, or of a secret file it references (${file:/path}), looking
// every interval until ctx ends. It compares content, not times: editors
// that write a new file and rename it over the old one, and config
// managers that rewrite it unchanged, are both seen right.
func Watch(ctx context.Context, path string, interval time.Duration, changed func()) {
	sum := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a file being replaced: look again next time
		}
		h := sha256.New()
		h.Write(b)
		for _, f := range config.SecretFiles(b) {
			secret, err := os.ReadFile(f) // #nosec G304 -- a path the operator's config names
			if err != nil {
				return nil // being rotated: look again next time
			}
			s := sha256.Sum256(secret) // hashed apart: lengths cannot run two files together
			h.Write(s[:])
		}
		return h.Sum(nil)
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
