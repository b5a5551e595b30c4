package admin

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenBytes is the entropy of a generated token: 256 bits.
const tokenBytes = 32

// EnsureToken returns the admin token kept in path, creating the file
// with a new random token (mode 0600, its directory 0750) when it does
// not exist yet. created says whether this call made it.
func EnsureToken(path string) (token string, created bool, err error) {
	token, err = ReadToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return token, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", false, fmt.Errorf("creating the admin token's directory: %w", err)
	}
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	token = base64.RawURLEncoding.EncodeToString(b)
	// O_EXCL: two Seawalls starting at once on one data directory agree
	// on the token the first one wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		token, err = ReadToken(path)
		return token, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("creating the admin token file: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("writing the admin token file %s: %w", path, err)
	}
	return token, true, nil
}

// ReadToken reads the admin token kept in path. A file that others than
// its owner may read is refused: the token guards job bodies and replays.
func ReadToken(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("reading the admin token: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("the admin token file %s has mode %v: others may read it; chmod 600 it", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the admin token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("the admin token file %s is empty", path)
	}
	return token, nil
}
