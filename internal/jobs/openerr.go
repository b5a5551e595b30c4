package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrCannotWrite says the store answers but cannot take a write: its disk
// is full, or its writes fail. Seawall is then not ready.
var ErrCannotWrite = errors.New("the job store cannot write")

// minFreeBytes is the least room the embedded store's file system must
// have for Seawall to call itself ready: an enqueue, its WAL frames and a
// checkpoint need some, and SQLite fails them all on a full disk.
const minFreeBytes = 1 << 20

// probeKind is the record kind /readyz's probe write uses.
const probeKind = "readyz-probe"

// freeBytes is the room left to an unprivileged writer on the file system
// holding dir; false when dir is empty or cannot be asked.
func freeBytes(dir string) (uint64, bool) {
	if dir == "" {
		return 0, false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true // #nosec G115 -- a block size is small and positive
}

// ErrSchemaNewer refuses a job store written by a newer Seawall: this
// build would misread, or damage, jobs it does not understand.
var ErrSchemaNewer = errors.New("the job store was written by a newer Seawall")

// sqliteOpenError says in words why the embedded store at path could not
// be opened, naming the path: SQLite's own messages ("unable to open
// database file (14)", "disk I/O error") name neither.
func sqliteOpenError(path string, err error) error {
	if errors.Is(err, ErrSchemaNewer) {
		return fmt.Errorf("job store %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	var cause string
	var se *sqlite.Error
	code := -1
	if errors.As(err, &se) {
		code = se.Code() & 0xff // the primary result code
	}
	switch {
	case unix.Access(dir, unix.W_OK) != nil:
		cause = fmt.Sprintf("its directory %s is not writable (read-only, or owned by another user)", dir)
	case code == sqlite3.SQLITE_READONLY || fileReadOnly(path):
		cause = "the file is read-only"
	case code == sqlite3.SQLITE_FULL || code == sqlite3.SQLITE_IOERR:
		cause = "the disk could not take the write"
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil {
			cause += fmt.Sprintf(" (%d bytes free on its file system: is the disk full?)", st.Bavail*uint64(st.Bsize)) //nolint:gosec // a block size is positive
		}
	case code == sqlite3.SQLITE_CANTOPEN:
		cause = "the file cannot be opened (is it a directory, or on a file system that refuses it?)"
	case code == sqlite3.SQLITE_NOTADB || code == sqlite3.SQLITE_CORRUPT:
		cause = "the file is not a job store, or is damaged"
	default:
		return fmt.Errorf("job store %s: %w", path, err)
	}
	return fmt.Errorf("job store %s: %s: %w", path, cause, err)
}

// fileReadOnly reports whether path exists and cannot be written.
func fileReadOnly(path string) bool {
	_, err := os.Stat(path)
	return err == nil && unix.Access(path, unix.W_OK) != nil
}
