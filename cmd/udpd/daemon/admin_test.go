package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminToken(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string // "" wants an error
	}{
		{"bare", "s3cret", "s3cret"},
		{"newline", "s3cret\n", "s3cret"},
		{"crlf", "s3cret\r\n", "s3cret"},
		{"every printable", "!~azAZ09-._+/=", "!~azAZ09-._+/="},
		{"empty", "", ""},
		{"only a newline", "\n", ""},
		{"two lines", "s3cret\nother\n", ""},
		{"two newlines", "s3cret\n\n", ""},
		{"leading newline", "\ns3cret", ""},
		{"space inside", "s3 cret", ""},
		{"leading space", " s3cret", ""},
		{"trailing space", "s3cret \n", ""},
		{"tab", "s3cret\t", ""},
		{"lone cr", "s3cret\r", ""},
		{"nul", "s3\x00cret", ""},
		{"del", "s3cret\x7f", ""},
		{"non-ascii", "straße", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := adminToken(path)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Errorf("adminToken(%q): got %q, %v, want an error naming %s", tc.content, got, err, path)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("adminToken(%q): got %q, %v, want %q", tc.content, got, err, tc.want)
			}
		})
	}
	if got, err := adminToken(""); got != "" || err != nil {
		t.Errorf("adminToken(\"\"): got %q, %v, want no token", got, err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := adminToken(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("adminToken(missing): got %v, want an error naming %s", err, missing)
	}
}
