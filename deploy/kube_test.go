package deploy

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	pspolicy "k8s.io/pod-security-admission/policy"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Objects of kinds whose Go types live in modules too heavy to import
// for a test (KEDA, Envoy Gateway) decode into these local structs, which
// hold the fields the manifests use, strictly: a field they do not know
// fails. Their field names are those of KEDA's keda.sh/v1alpha1 and
// Envoy Gateway's gateway.envoyproxy.io/v1alpha1 API types.

type scaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type       string            `json:"type"`
			Name       string            `json:"name"`
			MetricType string            `json:"metricType"`
			Metadata   map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

type policyTargetRef struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
}

type clientTrafficPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		TargetRefs []policyTargetRef `json:"targetRefs"`
		Timeout    struct {
			HTTP struct {
				IdleTimeout            string `json:"idleTimeout"`
				RequestReceivedTimeout string `json:"requestReceivedTimeout"`
			} `json:"http"`
		} `json:"timeout"`
	} `json:"spec"`
}

type backendTrafficPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		TargetRefs      []policyTargetRef `json:"targetRefs"`
		TargetSelectors []struct {
			Group       string            `json:"group"`
			Kind        string            `json:"kind"`
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"targetSelectors"`
		Timeout struct {
			HTTP struct {
				ConnectionIdleTimeout string `json:"connectionIdleTimeout"`
				MaxConnectionDuration string `json:"maxConnectionDuration"`
				RequestTimeout        string `json:"requestTimeout"`
			} `json:"http"`
		} `json:"timeout"`
	} `json:"spec"`
}

// kubeScheme knows every kind the manifests use that has Go types here.
func kubeScheme(t testing.TB) *k8sruntime.Scheme {
	t.Helper()
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme,
		gatewayv1.Install, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// decodeStrict decodes one YAML document into its Go type: Kubernetes'
// own with apimachinery's strict codec (an unknown or duplicate field is
// an error), or a local struct for KEDA and Envoy Gateway.
func decodeStrict(t testing.TB, s *k8sruntime.Scheme, doc []byte) (any, error) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var local any
	switch tm.APIVersion + " " + tm.Kind {
	case "keda.sh/v1alpha1 ScaledObject":
		local = &scaledObject{}
	case "gateway.envoyproxy.io/v1alpha1 ClientTrafficPolicy":
		local = &clientTrafficPolicy{}
	case "gateway.envoyproxy.io/v1alpha1 BackendTrafficPolicy":
		local = &backendTrafficPolicy{}
	}
	if local != nil {
		return local, yaml.UnmarshalStrict(doc, local)
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	obj, _, err := dec.Decode(doc, nil, nil)
	return obj, err
}

// splitYAML splits a stream into its documents, leaving out empty ones.
func splitYAML(t testing.TB, b []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

// TestManifestsDecodeStrictly: every manifest file decodes into its type
// with no unknown and no duplicate field.
func TestManifestsDecodeStrictly(t *testing.T) {
	s := kubeScheme(t)
	n := 0
	err := fs.WalkDir(shipped, "kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" || path.Base(p) == "kustomization.yaml" {
			return err
		}
		for i, doc := range splitYAML(t, readShipped(t, p)) {
			if _, err := decodeStrict(t, s, doc); err != nil {
				t.Errorf("%s, document %d: %v", p, i+1, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d manifests found", n)
	}
}

// TestStrictDecodingCatchesMistakes: the decoding above would see a
// misspelt or repeated field (the test of the test).
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	s := kubeScheme(t)
	for name, doc := range map[string]string{
		"unknown field":      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  publishNotReadyAdresses: true\n",
		"duplicate field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n  clusterIP: None\n",
		"unknown in a CRD":   "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec:\n  rules:\n    - timeout: {request: 0s}\n",
		"unknown in a local": "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  maxReplicas: 3\n",
	} {
		if _, err := decodeStrict(t, s, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// buildKustomization builds deploy/kubernetes/DIR in-process, from the
// shipped files, as kubectl apply -k would.
func buildKustomization(t testing.TB, dir string) []byte {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(shipped, "kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return mem.WriteFile("/"+p, readShipped(t, p))
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/kubernetes/"+dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// built is a kustomization's output, decoded.
type builtObjects struct {
	all          []any
	statefulSet  *appsv1.StatefulSet
	services     map[string]*corev1.Service
	routes       []*gatewayv1.HTTPRoute
	scaled       *scaledObject
	namespace    *corev1.Namespace
	monitor      *monitoringv1.ServiceMonitor
	pdb          *policyv1.PodDisruptionBudget
	netpol       *networkingv1.NetworkPolicy
	clientPolicy *clientTrafficPolicy
}

func build(t testing.TB, dir string) builtObjects {
	t.Helper()
	s := kubeScheme(t)
	b := builtObjects{services: map[string]*corev1.Service{}}
	for i, doc := range splitYAML(t, buildKustomization(t, dir)) {
		obj, err := decodeStrict(t, s, doc)
		if err != nil {
			t.Fatalf("%s, built document %d: %v\n%s", dir, i+1, err, doc)
		}
		b.all = append(b.all, obj)
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			b.statefulSet = o
		case *corev1.Service:
			b.services[o.Name] = o
		case *gatewayv1.HTTPRoute:
			b.routes = append(b.routes, o)
		case *scaledObject:
			b.scaled = o
		case *corev1.Namespace:
			b.namespace = o
		case *monitoringv1.ServiceMonitor:
			b.monitor = o
		case *policyv1.PodDisruptionBudget:
			b.pdb = o
		case *networkingv1.NetworkPolicy:
			b.netpol = o
		case *clientTrafficPolicy:
			b.clientPolicy = o
		}
	}
	if b.statefulSet == nil || b.scaled == nil || b.namespace == nil || b.monitor == nil || b.pdb == nil || b.netpol == nil || len(b.routes) == 0 {
		t.Fatalf("%s: the build lacks a kind it should have: %d objects", dir, len(b.all))
	}
	return b
}

// TestKustomizationsBuild: the base and the example overlay build, every
// object of the output decodes strictly, and the pieces fit together.
func TestKustomizationsBuild(t *testing.T) {
	for _, dir := range []string{"base", "overlays/example"} {
		t.Run(dir, func(t *testing.T) {
			checkBuilt(t, build(t, dir))
		})
	}
}

// argValue is the value of --name=VALUE in args.
func argValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func checkBuilt(t *testing.T, b builtObjects) {
	ss := b.statefulSet
	k := DefaultKube
	if ss.Name != k.Name || ss.Namespace != k.Namespace || b.namespace.Name != k.Namespace {
		t.Errorf("StatefulSet %s/%s, namespace %s: the generated routing assumes %s/%s", ss.Namespace, ss.Name, b.namespace.Name, k.Namespace, k.Name)
	}
	pod := ss.Spec.Template.Spec
	c := pod.Containers[0]

	// Every pod the autoscaler may make has a route, through a Service
	// that selects exactly it and lists it when not ready.
	if max := *b.scaled.Spec.MaxReplicaCount; int(max) != k.MaxReplicas {
		t.Errorf("ScaledObject maxReplicaCount %d, routes for %d pods", max, k.MaxReplicas)
	}
	routed := map[string]bool{}
	var hostnames [][]gatewayv1.Hostname
	for _, r := range b.routes {
		hostnames = append(hostnames, r.Spec.Hostnames)
		if len(r.Spec.Rules) > 16 {
			t.Errorf("HTTPRoute %s has %d rules; the Gateway API allows 16", r.Name, len(r.Spec.Rules))
		}
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				for _, q := range m.QueryParams {
					if q.Name != "route" {
						continue
					}
					if len(rule.BackendRefs) != 1 || string(rule.BackendRefs[0].Name) != q.Value {
						t.Errorf("route=%s goes to %v, want the Service %s", q.Value, rule.BackendRefs, q.Value)
					}
					routed[q.Value] = true
				}
			}
			if isWebSocketRule(rule) && (rule.Timeouts == nil || rule.Timeouts.Request == nil || *rule.Timeouts.Request != "0s") {
				t.Errorf("HTTPRoute %s: a /ws rule without timeouts.request 0s: a WebSocket would be cut", r.Name)
			}
		}
	}
	for i := range hostnames {
		if !slices.Equal(hostnames[i], hostnames[0]) {
			t.Errorf("HTTPRoutes with different hostnames %v: the per-pod rules must answer for the same names", hostnames)
		}
	}
	for _, p := range k.Pods() {
		if !routed[p] {
			t.Errorf("no route for pod %s", p)
		}
		svc := b.services[p]
		if svc == nil {
			t.Errorf("no Service %s", p)
			continue
		}
		if svc.Spec.Selector["statefulset.kubernetes.io/pod-name"] != p || len(svc.Spec.Selector) != 1 || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: selector %v, publishNotReadyAddresses %v: want exactly pod %s, ready or not", p, svc.Spec.Selector, svc.Spec.PublishNotReadyAddresses, p)
		}
	}

	// New sessions go to ready pods; the StatefulSet's own Service (and
	// the metrics) see every pod.
	if main := b.services["playground"]; main == nil || main.Spec.PublishNotReadyAddresses {
		t.Errorf("Service playground must list ready pods only: %+v", main)
	}
	headless := b.services[ss.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("the StatefulSet's Service %s must be headless and list pods that are not ready", ss.Spec.ServiceName)
	} else if !labelsMatch(b.monitor.Spec.Selector.MatchLabels, headless.Labels) {
		t.Errorf("the ServiceMonitor selects %v, not the headless Service (%v): a full pod would not be scraped", b.monitor.Spec.Selector.MatchLabels, headless.Labels)
	}
	for _, trig := range b.scaled.Spec.Triggers {
		q := trig.Metadata["query"]
		if !strings.Contains(q, `playground_sessions_active{namespace="`+ss.Namespace+`"}`) {
			t.Errorf("trigger %s queries %q, not this namespace's sessions", trig.Name, q)
		}
	}
	if r := b.scaled.Spec.ScaleTargetRef; r.Kind != "StatefulSet" || r.Name != ss.Name {
		t.Errorf("ScaledObject scales %s %s", r.Kind, r.Name)
	}

	// The pod: user namespace, profiles, probes, drain.
	if pod.HostUsers == nil || *pod.HostUsers {
		t.Error("hostUsers must be false")
	}
	if sp := pod.SecurityContext.SeccompProfile; sp == nil || sp.Type != corev1.SeccompProfileTypeLocalhost || *sp.LocalhostProfile != "profiles/playground.json" {
		t.Errorf("seccomp profile %+v", sp)
	}
	if c.SecurityContext.ProcMount == nil || *c.SecurityContext.ProcMount != corev1.UnmaskedProcMount {
		t.Error("procMount must be Unmasked")
	}
	if c.SecurityContext.Capabilities == nil || !slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.SecurityContext.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v: want none", c.SecurityContext.Capabilities)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v: want /readyz", c.ReadinessProbe)
	}
	drain, ok := argValue(c.Args, "drain-timeout")
	d, err := time.ParseDuration(drain)
	if !ok || err != nil {
		t.Fatalf("no --drain-timeout in %v", c.Args)
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if pre := c.Lifecycle.PreStop; pre == nil || pre.Sleep == nil {
		t.Error("no preStop pause")
	} else if grace < d+time.Duration(pre.Sleep.Seconds)*time.Second+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: less than the preStop pause, --drain-timeout %v and 10 s to tear down", grace, d)
	}
	if v, _ := argValue(c.Args, "max-sessions"); atoi(v) <= k.SessionsPerPod {
		t.Errorf("--max-sessions %q must be above the autoscaler's target of %d a pod", v, k.SessionsPerPod)
	}
	if b.pdb.Spec.MaxUnavailable == nil || b.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v", b.pdb.Spec.MaxUnavailable)
	}
}

func isWebSocketRule(r gatewayv1.HTTPRouteRule) bool {
	for _, m := range r.Matches {
		if m.Path != nil && m.Path.Value != nil && *m.Path.Value == "/ws" {
			return true
		}
	}
	return false
}

func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// TestPodSecurity evaluates the built pod with Kubernetes' own Pod
// Security admission code: it passes "baseline" from Kubernetes 1.35 on
// (the version that allows procMount: Unmasked in a pod with its own user
// namespace), and fails it before, for procMount alone. It never passes
// "restricted", which forbids an unmasked /proc whatever the namespace;
// the server needs one (a container's fresh /proc is refused by the
// kernel while the pod's /proc has masked parts), and that is the only
// restricted check it fails.
func TestPodSecurity(t *testing.T) {
	b := build(t, "overlays/example")
	ev, err := pspolicy.NewEvaluator(pspolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := b.statefulSet.Spec.Template
	failing := func(level psapi.Level, v psapi.Version) []string {
		var ids []string
		for _, r := range ev.EvaluatePod(psapi.LevelVersion{Level: level, Version: v}, &tmpl.ObjectMeta, &tmpl.Spec) {
			if !r.Allowed {
				ids = append(ids, r.ForbiddenReason+": "+r.ForbiddenDetail)
			}
		}
		return ids
	}
	for _, tc := range []struct {
		level psapi.Level
		v     psapi.Version
		want  string // "" passes; else the one reason it fails for
	}{
		{psapi.LevelBaseline, psapi.LatestVersion(), ""},
		{psapi.LevelBaseline, psapi.MajorMinorVersion(1, 35), ""},
		{psapi.LevelBaseline, psapi.MajorMinorVersion(1, 34), "procMount"},
		{psapi.LevelRestricted, psapi.LatestVersion(), "procMount"},
		{psapi.LevelRestricted, psapi.MajorMinorVersion(1, 35), "procMount"},
	} {
		got := failing(tc.level, tc.v)
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s %s: fails: %q", tc.level, tc.v.String(), got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s %s: want it to fail for %s alone, got %q", tc.level, tc.v.String(), tc.want, got)
		default:
			t.Logf("%s %s: %q", tc.level, tc.v.String(), got)
		}
	}
	// The namespace enforces the level the pods pass.
	if l := b.namespace.Labels["pod-security.kubernetes.io/enforce"]; l != string(psapi.LevelBaseline) {
		t.Errorf("namespace enforces %q, want baseline", l)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
