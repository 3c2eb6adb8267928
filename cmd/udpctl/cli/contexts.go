package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// daemonTarget is one udpd admin API that a command talks to, with the
// credentials to reach it.
type daemonTarget struct {
	name      string // what the DAEMON column shows: the context's name, or the address
	context   string // the context it came from, if any
	admin     string // TCP host:port or unix:///path
	tls       bool
	caCert    string
	cert, key string
	tokenFile string
}

// contextsFile is udpctl's configuration file: named contexts, as in a
// kubeconfig, each an admin address with its TLS settings and token.
type contextsFile struct {
	// CurrentContext names the contexts used when neither --admin nor
	// --context (nor UDPCTL_ADMIN or UDPCTL_CONTEXT) is given.
	CurrentContext string         `yaml:"current-context"`
	Contexts       []adminContext `yaml:"contexts"`
}

// adminContext is one named daemon.
type adminContext struct {
	Name      string `yaml:"name"`
	Admin     string `yaml:"admin"`
	TLS       bool   `yaml:"tls"`
	CACert    string `yaml:"cacert"`
	Cert      string `yaml:"cert"`
	Key       string `yaml:"key"`
	TokenFile string `yaml:"token-file"`
}

var contextName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// contextsPath is where udpctl reads its contexts: $UDPCTL_CONFIG, or
// $XDG_CONFIG_HOME/udpctl/config.yaml (~/.config/udpctl/config.yaml).
func contextsPath() (string, error) {
	if p := os.Getenv("UDPCTL_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "udpctl", "config.yaml"), nil
}

// loadContexts reads and checks the contexts file at path. A file that
// does not exist is an empty one. Relative file names in it are relative
// to the file's directory.
func loadContexts(path string) (*contextsFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &contextsFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read contexts: %w", err)
	}
	var f contextsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("contexts file %s: %w", path, err)
	}
	seen := map[string]bool{}
	dir := filepath.Dir(path)
	for i := range f.Contexts {
		c := &f.Contexts[i]
		switch {
		case !contextName.MatchString(c.Name):
			return nil, fmt.Errorf("contexts file %s: context %d: name %q: want letters, digits, '.', '_' or '-'", path, i+1, c.Name)
		case seen[c.Name]:
			return nil, fmt.Errorf("contexts file %s: context %q appears twice", path, c.Name)
		case c.Admin == "":
			return nil, fmt.Errorf("contexts file %s: context %q has no admin address", path, c.Name)
		case strings.Contains(c.Admin, ","):
			return nil, fmt.Errorf("contexts file %s: context %q: admin %q: one address per context", path, c.Name, c.Admin)
		}
		seen[c.Name] = true
		for _, p := range []*string{&c.CACert, &c.Cert, &c.Key, &c.TokenFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	if f.CurrentContext != "" {
		if _, err := f.find(path, f.CurrentContext); err != nil {
			return nil, fmt.Errorf("current-context: %w", err)
		}
	}
	return &f, nil
}

// find returns the contexts named in names, a comma-separated list.
func (f *contextsFile) find(path, names string) ([]adminContext, error) {
	var out []adminContext
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		i := -1
		for j, c := range f.Contexts {
			if c.Name == n {
				i = j
			}
		}
		if i < 0 {
			known := make([]string, len(f.Contexts))
			for j, c := range f.Contexts {
				known[j] = c.Name
			}
			return nil, fmt.Errorf("context %q is not in %s (it has: %s)", n, path, strings.Join(known, ", "))
		}
		out = append(out, f.Contexts[i])
	}
	return out, nil
}

// targets resolves the daemons a command talks to. In order: --admin (a
// comma-separated list), --context (names in the contexts file), env
// UDPCTL_ADMIN, env UDPCTL_CONTEXT, the file's current-context, and last
// 127.0.0.1:50051. With contexts, each context's TLS settings and token
// apply, and the TLS and token flags given on the command line override
// them. The same daemon named twice is a usage error.
func (a *app) targets(cmd *cobra.Command) ([]daemonTarget, error) {
	flags := cmd.Flags()
	adminSet, contextSet := flags.Changed("admin"), flags.Changed("context")
	if adminSet && contextSet {
		return nil, usageError{errors.New("--admin and --context cannot be used together")}
	}
	admin, names := a.admin, a.context
	switch {
	case adminSet:
		names = ""
	case contextSet:
		admin = ""
	case os.Getenv("UDPCTL_ADMIN") != "":
		admin, names = os.Getenv("UDPCTL_ADMIN"), ""
	case os.Getenv("UDPCTL_CONTEXT") != "":
		admin, names = "", os.Getenv("UDPCTL_CONTEXT")
	default:
		admin, names = "", ""
	}
	var out []daemonTarget
	if names == "" && admin == "" {
		// Neither given: the current context, or the default address.
		path, err := contextsPath()
		if err == nil {
			f, err := loadContexts(path)
			if err != nil {
				return nil, usageError{err}
			}
			names = f.CurrentContext
		}
		if names == "" {
			admin = defaultAdmin
		}
	}
	if names != "" {
		path, err := contextsPath()
		if err != nil {
			return nil, usageError{fmt.Errorf("--context: %w", err)}
		}
		f, err := loadContexts(path)
		if err != nil {
			return nil, usageError{err}
		}
		cs, err := f.find(path, names)
		if err != nil {
			return nil, usageError{fmt.Errorf("--context: %w", err)}
		}
		for _, c := range cs {
			t := daemonTarget{
				name: c.Name, context: c.Name, admin: c.Admin,
				tls: c.TLS, caCert: c.CACert, cert: c.Cert, key: c.Key, tokenFile: c.TokenFile,
			}
			a.overrideCredentials(cmd, &t)
			out = append(out, t)
		}
	} else {
		for _, addr := range strings.Split(admin, ",") {
			addr = strings.TrimSpace(addr)
			if addr == "" {
				return nil, usageError{fmt.Errorf("--admin %q: an empty address in the list", admin)}
			}
			out = append(out, daemonTarget{
				name: addr, admin: addr,
				tls: a.tls, caCert: a.caCert, cert: a.cert, key: a.key, tokenFile: a.tokenFile,
			})
		}
	}
	seen := map[string]bool{}
	for _, t := range out {
		if seen[t.admin] {
			return nil, usageError{fmt.Errorf("daemon %s is named twice", t.admin)}
		}
		seen[t.admin] = true
	}
	return out, nil
}

// overrideCredentials applies the TLS and token flags given on the command
// line to a target that came from a context.
func (a *app) overrideCredentials(cmd *cobra.Command, t *daemonTarget) {
	f := cmd.Flags()
	if f.Changed("tls") {
		t.tls = a.tls
	}
	if f.Changed("cacert") {
		t.caCert = a.caCert
	}
	if f.Changed("cert") {
		t.cert = a.cert
	}
	if f.Changed("key") {
		t.key = a.key
	}
	if f.Changed("token-file") {
		t.tokenFile = a.tokenFile
	}
}
