// Package testcerts issues throwaway X.509 certificates for tests: a CA
// ([NewCA]) that signs server and client leaf certificates ([CA.Issue]).
//
// Keys are ECDSA P-256 and certificates are valid from one hour ago to 24
// hours ahead, so clock skew between a test and a server it starts does not
// matter. Nothing here is fit for production use.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is a self-signed certificate authority whose key stays in memory.
type CA struct {
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert in PEM form, suitable for sslrootcert or a trust store.
	CertPEM []byte

	key *ecdsa.PrivateKey
}

// Leaf describes a certificate to issue.
type Leaf struct {
	// CommonName is the subject CN.
	CommonName string
	// DNSNames are DNS subject alternative names (what TLS clients verify).
	DNSNames []string
	// IPAddresses are IP subject alternative names.
	IPAddresses []net.IP
	// URIs are URI subject alternative names (SPIFFE IDs, for example).
	URIs []*url.URL
	// Client selects ExtKeyUsageClientAuth; otherwise the certificate is
	// for ExtKeyUsageServerAuth.
	Client bool
}

// Issued is a leaf certificate and its private key.
type Issued struct {
	// CertPEM is the leaf certificate in PEM form.
	CertPEM []byte
	// KeyPEM is the private key as a PKCS #8 "PRIVATE KEY" PEM block.
	KeyPEM []byte
	// TLS holds the same certificate and key, ready for tls.Config.
	TLS tls.Certificate
}

// NewCA creates a CA with a fresh key and a self-signed certificate whose
// subject CN is commonName.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := validity()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"fleproxy tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcerts: parse CA certificate: %w", err)
	}
	return &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
	}, nil
}

// Issue creates a key pair and a certificate for it signed by ca.
func (ca *CA) Issue(l Leaf) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: generate key for %q: %w", l.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	usage := x509.ExtKeyUsageServerAuth
	if l.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	notBefore, notAfter := validity()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: l.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		DNSNames:              l.DNSNames,
		IPAddresses:           l.IPAddresses,
		URIs:                  l.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: create certificate for %q: %w", l.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: marshal key for %q: %w", l.CommonName, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("testcerts: load key pair for %q: %w", l.CommonName, err)
	}
	return &Issued{CertPEM: certPEM, KeyPEM: keyPEM, TLS: pair}, nil
}

// Pool returns a new certificate pool holding only the CA certificate, for
// tls.Config.RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// WriteFiles writes cert and key PEM files (key mode 0600) into dir with the
// given base name ("<base>.crt" and "<base>.key") and returns their paths.
func (i *Issued) WriteFiles(dir, base string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, base+".crt")
	keyFile = filepath.Join(dir, base+".key")
	if err := os.WriteFile(certFile, i.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("testcerts: write certificate: %w", err)
	}
	if err := writePrivate(keyFile, i.KeyPEM); err != nil {
		return "", "", fmt.Errorf("testcerts: write key: %w", err)
	}
	return certFile, keyFile, nil
}

// writePrivate writes data to a file with mode 0600 even if the file already
// existed with a wider mode (os.WriteFile keeps an existing file's mode, and
// PostgreSQL refuses a key file readable by others).
func writePrivate(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func validity() (notBefore, notAfter time.Time) {
	now := time.Now()
	return now.Add(-time.Hour), now.Add(24 * time.Hour)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testcerts: serial number: %w", err)
	}
	return serial, nil
}
