package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
)

// validate checks that the files load and fit together, and that
// verification is only skipped where it was allowed.
func (t *TLS) validate(v *checker, p, rawURL string) {
	if t.CAFile != "" {
		if _, err := t.pool(); err != nil {
			v.add(p+".ca_file", "%v", err)
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		v.add(p+".cert_file", "cert_file and key_file go together: set both or neither")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			v.add(p+".cert_file", "cannot load the client certificate and key: %v", err)
		}
	}
	if _, err := t.minVersion(); err != nil {
		v.add(p+".min_version", "%v", err)
	}
	if t.InsecureSkipVerify && !t.AllowInsecure {
		if u, err := url.Parse(rawURL); err == nil && !isLoopback(net.JoinHostPort(u.Hostname(), "0")) {
			v.add(p+".insecure_skip_verify", "refused for %s, which is not a loopback address: anyone on the path could answer as the vendor; set allow_insecure: true to accept that", u.Hostname())
		}
	}
}

// pool loads CAFile.
func (t *TLS) pool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", t.CAFile)
	}
	return pool, nil
}

func (t *TLS) minVersion() (uint16, error) {
	switch t.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, errors.New(`must be "1.2" or "1.3"`)
}

// ClientConfig is the crypto/tls configuration for the upstream; nil t
// means the defaults.
func (t *TLS) ClientConfig() (*tls.Config, error) {
	if t == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // validated: loopback or explicitly allowed
	var err error
	if c.MinVersion, err = t.minVersion(); err != nil {
		return nil, err
	}
	if t.CAFile != "" {
		if c.RootCAs, err = t.pool(); err != nil {
			return nil, err
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
