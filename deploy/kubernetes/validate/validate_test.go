package validate

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The kustomizations a user applies, and the kind of their workload.
var variants = map[string]string{
	"../deployment": "Deployment",
	"../daemonset":  "DaemonSet",
}

// decoder decodes YAML strictly into the registered API types: an unknown
// or duplicate field, or a field in the wrong case, is an error.
func decoder(t *testing.T) runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}

// rendered is one kustomization's objects, decoded.
type rendered struct {
	names      []string
	workload   runtime.Object
	pod        *corev1.PodTemplateSpec
	selector   labels.Selector
	service    *corev1.Service
	podMonitor *monitoringv1.PodMonitor
	configMaps map[string]*corev1.ConfigMap
}

// render runs kustomize on dir, as kubectl apply -k does, and decodes each
// object strictly.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	dec := decoder(t)
	r := &rendered{configMaps: map[string]*corev1.ConfigMap{}}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := dec.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("%s: %s/%s does not decode strictly: %v", dir, res.GetKind(), res.GetName(), err)
		}
		r.names = append(r.names, fmt.Sprintf("%s/%s (%s)", gvk.Kind, res.GetName(), gvk.GroupVersion()))
		switch o := obj.(type) {
		case *appsv1.Deployment:
			r.workload, r.pod = o, &o.Spec.Template
			r.selector, err = metaSelector(o.Spec.Selector.MatchLabels)
		case *appsv1.DaemonSet:
			r.workload, r.pod = o, &o.Spec.Template
			r.selector, err = metaSelector(o.Spec.Selector.MatchLabels)
		case *corev1.Service:
			r.service = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *monitoringv1.PodMonitor:
			r.podMonitor = o
		default:
			t.Errorf("%s: unexpected object %s", dir, gvk)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

// TestManifests renders every variant and checks what the manifests
// promise: the objects decode strictly; the Service and PodMonitor select
// the pods and name their ports; the probes are gRPC probes on the admin
// port; the pod and container security contexts meet the "restricted" Pod
// Security Standard (but for the DaemonSet's host network); and the grace
// period covers the preStop sleep plus udpd's --shutdown-timeout.
func TestManifests(t *testing.T) {
	for dir, kind := range variants {
		t.Run(kind, func(t *testing.T) {
			r := render(t, dir)
			t.Logf("kustomize build %s: %s", dir, strings.Join(r.names, ", "))
			if r.pod == nil || r.service == nil || r.podMonitor == nil {
				t.Fatalf("want a %s, a Service and a PodMonitor; got %v", kind, r.names)
			}
			if k := r.workload.GetObjectKind().GroupVersionKind().Kind; k != kind {
				t.Errorf("workload is a %s, want a %s", k, kind)
			}
			pod := r.pod
			podLabels := labels.Set(pod.Labels)
			if !r.selector.Matches(podLabels) {
				t.Errorf("the %s's selector %v does not match its pods' labels %v", kind, r.selector, podLabels)
			}
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			if c.Image != "localhost/udpd:dev" {
				t.Errorf("image %q, want localhost/udpd:dev (make image)", c.Image)
			}
			port := func(name string) *corev1.ContainerPort {
				for i := range c.Ports {
					if c.Ports[i].Name == name {
						return &c.Ports[i]
					}
				}
				t.Errorf("the container has no port named %q", name)
				return &corev1.ContainerPort{}
			}

			// The Service: UDP, to the pods' udp port.
			if sel := labels.SelectorFromSet(r.service.Spec.Selector); len(r.service.Spec.Selector) == 0 || !sel.Matches(podLabels) {
				t.Errorf("Service selector %v does not select the pods %v", r.service.Spec.Selector, podLabels)
			}
			for _, sp := range r.service.Spec.Ports {
				if sp.Protocol != corev1.ProtocolUDP {
					t.Errorf("Service port %s: protocol %s, want UDP", sp.Name, sp.Protocol)
				}
				if sp.TargetPort.Type != intstr.String || port(sp.TargetPort.StrVal).Protocol != corev1.ProtocolUDP {
					t.Errorf("Service port %s targets %v, want the container's UDP port by name", sp.Name, sp.TargetPort.String())
				}
			}

			// The PodMonitor: the pods' metrics port.
			pmSel := labels.SelectorFromSet(r.podMonitor.Spec.Selector.MatchLabels)
			if len(r.podMonitor.Spec.Selector.MatchLabels) == 0 || !pmSel.Matches(podLabels) {
				t.Errorf("PodMonitor selector %v does not select the pods %v", r.podMonitor.Spec.Selector.MatchLabels, podLabels)
			}
			for _, ep := range r.podMonitor.Spec.PodMetricsEndpoints {
				if ep.Port == nil || port(*ep.Port).ContainerPort != flagPort(t, c.Args, "--metrics") {
					t.Errorf("PodMonitor endpoint port %v is not udpd's --metrics port", ep.Port)
				}
			}

			// Probes: kubelet's native gRPC probe on the health service.
			admin := port("admin").ContainerPort
			if admin != flagPort(t, c.Args, "--admin") {
				t.Errorf("the admin port %d is not udpd's --admin port", admin)
			}
			for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.GRPC == nil {
					t.Errorf("%s probe: want a gRPC probe, got %+v", name, p)
					continue
				}
				if p.GRPC.Port != admin {
					t.Errorf("%s probe on port %d, want the admin port %d", name, p.GRPC.Port, admin)
				}
			}

			// Security: restricted, non-root, read-only, no capabilities.
			ps := pod.Spec.SecurityContext
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
				t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", ps)
			}
			if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext: want seccompProfile RuntimeDefault")
			}
			cs := c.SecurityContext
			switch {
			case cs == nil:
				t.Fatal("the container has no securityContext")
			case cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation:
				t.Error("container: want allowPrivilegeEscalation: false")
			case cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem:
				t.Error("container: want readOnlyRootFilesystem: true")
			case cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0:
				t.Errorf("container capabilities %+v: want drop ALL and add none", cs.Capabilities)
			case cs.Privileged != nil && *cs.Privileged:
				t.Error("container: privileged")
			}
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("want automountServiceAccountToken: false: udpd never calls the Kubernetes API")
			}
			if hostNet := kind == "DaemonSet"; pod.Spec.HostNetwork != hostNet {
				t.Errorf("hostNetwork %v, want %v", pod.Spec.HostNetwork, hostNet)
			} else if hostNet && pod.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("host network with dnsPolicy %q, want ClusterFirstWithHostNet", pod.Spec.DNSPolicy)
			}

			// Termination: preStop sleep, then udpd's own shutdown, inside
			// the grace period with time to spare.
			var sleep time.Duration
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Error("want a preStop sleep, so the endpoints are gone before udpd stops")
			} else {
				sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			shutdown, err := time.ParseDuration(flagValue(t, c.Args, "--shutdown-timeout"))
			if err != nil {
				t.Fatal(err)
			}
			grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace <= sleep+shutdown {
				t.Errorf("terminationGracePeriodSeconds %v, want more than preStop sleep %v + --shutdown-timeout %v", grace, sleep, shutdown)
			}

			// The configuration: --config names a key of the udpd-config
			// ConfigMap, mounted as a directory (a subPath mount would
			// never see an edit).
			cfgPath := flagValue(t, c.Args, "--config")
			if cfgPath == "" {
				t.Error("no --config: the pods should load the udpd-config ConfigMap")
			}
			var cfgMount *corev1.VolumeMount
			for i, m := range c.VolumeMounts {
				if strings.TrimSuffix(m.MountPath, "/") == path.Dir(cfgPath) {
					cfgMount = &c.VolumeMounts[i]
				}
			}
			if cfgMount == nil || cfgMount.SubPath != "" {
				t.Errorf("--config %s: want its directory mounted whole, got mount %+v", cfgPath, cfgMount)
			} else {
				var cm *corev1.ConfigMap
				for _, v := range pod.Spec.Volumes {
					if v.Name == cfgMount.Name && v.ConfigMap != nil {
						cm = r.configMaps[v.ConfigMap.Name]
					}
				}
				if cm == nil {
					t.Errorf("--config %s: the volume %q is not a ConfigMap of this kustomization", cfgPath, cfgMount.Name)
				} else if data, ok := cm.Data[path.Base(cfgPath)]; !ok || !strings.Contains(data, "listeners:") {
					t.Errorf("ConfigMap %s has no key %q holding a configuration", cm.Name, path.Base(cfgPath))
				}
			}

			// Every file udpd is told to read is mounted.
			for _, flag := range []string{"--admin-token-file", "--config"} {
				v := flagValue(t, c.Args, flag)
				if v == "" {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if strings.HasPrefix(v, strings.TrimSuffix(m.MountPath, "/")+"/") {
						mounted = true
					}
				}
				if !mounted {
					t.Errorf("%s %s is on no volume mount", flag, v)
				}
			}
		})
	}
}

// flagValue is the value of --name=value in args, or "".
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// flagPort is the port of --name=host:port in args.
func flagPort(t *testing.T, args []string, name string) int32 {
	t.Helper()
	v := flagValue(t, args, name)
	i := strings.LastIndex(v, ":")
	var p int32
	if _, err := fmt.Sscan(v[i+1:], &p); err != nil || i < 0 {
		t.Fatalf("%s=%q: no port", name, v)
	}
	return p
}
