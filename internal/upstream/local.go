package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"syscall"
)

// localTrouble reports whether err comes from Seawall's own host rather
// than the upstream: out of file descriptors, buffers, memory or local
// ports. Such a failure says nothing of the upstream's health.
func localTrouble(err error) bool {
	for _, e := range [...]error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// tlsTrouble reports whether err is a refused certificate, either side's,
// or an upstream that does not speak TLS where it should: trying again
// would meet the same refusal.
func tlsTrouble(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		op       *net.OpError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) || (errors.As(err, &op) && op.Op == "remote error")
}
