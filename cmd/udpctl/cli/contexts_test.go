package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadContexts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write(`current-context: a,b
contexts:
  - name: a
    admin: 127.0.0.1:1
    token-file: token
  - name: b
    admin: unix:///run/udpd/admin.sock
    tls: true
    cacert: /etc/udpd/ca.pem
    cert: certs/client.pem
    key: certs/client-key.pem
`)
	f, err := loadContexts(path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := f.find(path, f.CurrentContext)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != "a" || cs[1].Name != "b" {
		t.Fatalf("find(%q) = %+v, want a then b", f.CurrentContext, cs)
	}
	// Relative names are relative to the file; absolute ones stay.
	for _, c := range []struct{ got, want string }{
		{cs[0].TokenFile, filepath.Join(dir, "token")},
		{cs[1].CACert, "/etc/udpd/ca.pem"},
		{cs[1].Cert, filepath.Join(dir, "certs/client.pem")},
		{cs[1].Key, filepath.Join(dir, "certs/client-key.pem")},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !cs[1].TLS || cs[0].TLS {
		t.Errorf("tls: got a=%v b=%v, want false, true", cs[0].TLS, cs[1].TLS)
	}

	// A missing file is an empty one.
	if f, err := loadContexts(filepath.Join(dir, "nope.yaml")); err != nil || len(f.Contexts) != 0 {
		t.Errorf("missing file: got %+v, %v; want empty, nil", f, err)
	}

	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown field", "contexts:\n  - name: a\n    admin: x:1\n    adress: y\n", "field adress not found"},
		{"duplicate", "contexts:\n  - {name: a, admin: x:1}\n  - {name: a, admin: y:1}\n", `context "a" appears twice`},
		{"no admin", "contexts:\n  - name: a\n", `context "a" has no admin address`},
		{"bad name", "contexts:\n  - {name: 'a b', admin: x:1}\n", `name "a b"`},
		{"list in admin", "contexts:\n  - {name: a, admin: 'x:1,y:1'}\n", "one address per context"},
		{"unknown current", "current-context: z\ncontexts:\n  - {name: a, admin: x:1}\n", `current-context: context "z" is not in`},
		{"not yaml", "contexts: [\n", "config.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file)
			_, err := loadContexts(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadContexts: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
