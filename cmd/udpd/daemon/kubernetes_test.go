package daemon

import (
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	udpdconfig "github.com/udpd/udpd/service/config"
)

var workloads = []string{
	"../../../deploy/kubernetes/deployment/deployment.yaml",
	"../../../deploy/kubernetes/daemonset/daemonset.yaml",
}

// container is the part of a workload file these tests read.
type container struct {
	Name  string
	Args  []string
	Ports []struct {
		Name          string
		ContainerPort uint16 `yaml:"containerPort"`
		Protocol      string
	}
}

func readContainers(t *testing.T, path string) []container {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Spec.Template.Spec.Containers
}

// TestKubernetesArgs keeps deploy/kubernetes honest on udpd's side: the
// arguments of the Deployment's and the DaemonSet's container parse with
// udpd's own flags, and they say what the manifests' comments promise.
// (deploy/kubernetes/validate checks the objects against the Kubernetes
// API types, in a module of its own.)
func TestKubernetesArgs(t *testing.T) {
	for _, path := range workloads {
		t.Run(path[strings.LastIndex(path, "/")+1:], func(t *testing.T) {
			cs := readContainers(t, path)
			if len(cs) != 1 || cs[0].Name != "udpd" {
				t.Fatalf("containers %+v, want one named udpd", cs)
			}
			// kubelet expands $(POD_IP) from the pod's environment.
			args := make([]string, len(cs[0].Args))
			for i, a := range cs[0].Args {
				args[i] = strings.ReplaceAll(a, "$(POD_IP)", "192.0.2.1")
			}
			cfg, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatalf("args %q do not parse: %v", args, err)
			}
			if cfg.configFile != "/etc/udpd/config/udpd.yaml" || cfg.allowImperative {
				t.Errorf("--config %q, --allow-imperative %v: want the udpd-config ConfigMap's file, and the admin API unable to change what it says",
					cfg.configFile, cfg.allowImperative)
			}
			if cfg.statePath != "" || cfg.resume {
				t.Errorf("state %q, resume %v: a pod keeps no state file", cfg.statePath, cfg.resume)
			}
			if !cfg.adminInsecure || cfg.adminTokenFile == "" {
				t.Errorf("admin insecure %v, token file %q: kubelet's gRPC probes need plain text, so admin calls need a token",
					cfg.adminInsecure, cfg.adminTokenFile)
			}
			if cfg.metrics == "" {
				t.Error("no --metrics: the PodMonitor scrapes it")
			}
			if cfg.drainTimeout <= 0 || cfg.drainTimeout > 10*time.Second {
				t.Errorf("--shutdown-timeout %v: want a bounded drain that fits the grace period", cfg.drainTimeout)
			}
			if cfg.logFormat != "json" {
				t.Errorf("--log-format %q, want json for the cluster's log collector", cfg.logFormat)
			}
		})
	}
}

// TestKubernetesConfig parses the configuration the pods load from the
// udpd-config ConfigMap with udpd's own parser, and checks that every
// listener it lists is on a UDP port the containers declare.
func TestKubernetesConfig(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/kubernetes/base/udpd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := udpdconfig.Parse(b)
	if err != nil {
		t.Fatalf("deploy/kubernetes/base/udpd.yaml: %v", err)
	}
	if len(f.Listeners) == 0 {
		t.Fatal("the configuration lists no listener")
	}
	for _, path := range workloads {
		cs := readContainers(t, path)
		if len(cs) != 1 {
			t.Fatalf("%s: %d containers, want 1", path, len(cs))
		}
		for _, l := range f.Listeners {
			ap, err := netip.ParseAddrPort(l.Address)
			if err != nil {
				t.Errorf("listener %s: address %q: %v", l.ID, l.Address, err)
				continue
			}
			declared := false
			for _, p := range cs[0].Ports {
				if p.ContainerPort == ap.Port() && p.Protocol == "UDP" {
					declared = true
				}
			}
			if !declared {
				t.Errorf("%s: listener %s's port %d is no UDP containerPort", path, l.ID, ap.Port())
			}
		}
	}
}
