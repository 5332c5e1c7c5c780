package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDefaultsAndOverrides(t *testing.T) {
	c, err := Parse([]byte(`
listen: 0.0.0.0:7432
upstream:
  address: db.internal:5432
  connect_timeout: 3s
limits:
  max_message_bytes: 1048576
log:
  format: console
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:7432" || c.Upstream.Address != "db.internal:5432" || c.Upstream.ConnectTimeout != 3*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	if c.Limits.MaxMessageBytes != 1<<20 || c.Limits.StartupTimeout != Default().Limits.StartupTimeout || c.Log.Level != "info" {
		t.Fatalf("defaults not kept: %+v", c)
	}
	if empty, err := Parse(nil, "empty.yaml"); err != nil || empty.Listen != Default().Listen {
		t.Fatalf("empty file: %+v, %v", empty, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "listen: 127.0.0.1:1\nlisten_adress: x\n", "line 2: field listen_adress not found"},
		{"nested unknown field", "upstream:\n  tls:\n    mod: require\n", "line 3: field mod not found"},
		{"bad listen", "listen: nope\n", `listen: "nope" is not host:port`},
		{"bad tls mode", "upstream:\n  tls:\n    mode: prefer\n", `upstream.tls.mode: "prefer"`},
		{"verify-full without CA", "upstream:\n  tls:\n    mode: verify-full\n", "ca_file is required"},
		{"client cert without CA", "client_tls:\n  cert_file: a\n  key_file: b\n  client_cert: require\n", "needs client_ca_file"},
		{"required without cert", "client_tls:\n  required: true\n", "need cert_file and key_file"},
		{"tiny max message", "limits:\n  max_message_bytes: 10\n", "below the minimum"},
		{"bad duration", "limits:\n  startup_timeout: soon\n", "line 2: cannot unmarshal !!str `soon` into time.Duration"},
		{"bad log format", "log:\n  format: xml\n", "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "bad.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "bad.yaml") {
				t.Fatalf("error %v does not name the file", err)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	c := Default()
	if tc, err := c.ClientTLSConfig(); tc != nil || err != nil {
		t.Fatalf("no client TLS configured: %v, %v", tc, err)
	}
	if tc, err := c.UpstreamTLSConfig(); tc != nil || err != nil {
		t.Fatalf("upstream TLS disabled: %v, %v", tc, err)
	}
	c.Upstream.TLS.Mode = UpstreamTLSRequire
	tc, err := c.UpstreamTLSConfig()
	if err != nil || tc == nil || !tc.InsecureSkipVerify || tc.ServerName != "127.0.0.1" {
		t.Fatalf("require: %+v, %v", tc, err)
	}
	c.Upstream.TLS = UpstreamTLS{Mode: UpstreamTLSVerifyFull, CAFile: "/nonexistent/ca.pem"}
	if _, err := c.UpstreamTLSConfig(); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("missing CA file: %v", err)
	}
}
