package main

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"knative.dev/networking/pkg/apis/networking"
	"knative.dev/networking/pkg/apis/networking/v1alpha1"
	"knative.dev/networking/pkg/http/header"
	"knative.dev/networking/pkg/ingress"
)

const testClass = "kourier.ingress.networking.knative.dev"

func split(name string, percent int, hdr map[string]string) v1alpha1.IngressBackendSplit {
	return v1alpha1.IngressBackendSplit{
		IngressBackend: v1alpha1.IngressBackend{ServiceNamespace: "ns", ServiceName: name, ServicePort: intstr.FromInt(80)},
		Percent:        percent,
		AppendHeaders:  hdr,
	}
}

func path(p string, headers map[string]string, splits ...v1alpha1.IngressBackendSplit) v1alpha1.HTTPIngressPath {
	hp := v1alpha1.HTTPIngressPath{Path: p, Splits: splits}
	for k, v := range headers {
		if hp.Headers == nil {
			hp.Headers = map[string]v1alpha1.HeaderMatch{}
		}
		hp.Headers[k] = v1alpha1.HeaderMatch{Exact: v}
	}
	return hp
}

func rule(vis v1alpha1.IngressVisibility, hosts []string, paths ...v1alpha1.HTTPIngressPath) v1alpha1.IngressRule {
	return v1alpha1.IngressRule{Hosts: hosts, Visibility: vis, HTTP: &v1alpha1.HTTPIngressRuleValue{Paths: paths}}
}

func mkIngress(name string, gen int64, rules ...v1alpha1.IngressRule) *v1alpha1.Ingress {
	return &v1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: name, Generation: gen,
			Annotations: map[string]string{networking.IngressClassAnnotationKey: testClass},
		},
		Spec: v1alpha1.IngressSpec{Rules: rules},
	}
}

// backendOf names the service a route sends to (its first split).
func backendOf(r *Route) string {
	if r == nil {
		return "<404>"
	}
	return r.Splits[0].Name
}

func TestVisibilityPerListenerAndHostMatching(t *testing.T) {
	ing := mkIngress("app", 1,
		rule(v1alpha1.IngressVisibilityExternalIP, []string{"app.example.com"}, path("", nil, split("public", 0, nil))),
		rule(v1alpha1.IngressVisibilityClusterLocal, []string{"app.ns", "app.ns.svc.cluster.local"}, path("", nil, split("local", 0, nil))),
	)
	tbl := BuildTable([]*v1alpha1.Ingress{ing})
	cases := []struct{ listener, host, want string }{
		{External, "app.example.com", "public"},
		{External, "app.example.com:8080", "public"}, // port ignored ("host:*" domains)
		{External, "APP.Example.com:80", "public"},   // domains are case-insensitive
		{External, "app.ns.svc.cluster.local", "<404>"},
		{External, "app.ns", "<404>"},
		{Internal, "app.example.com", "public"}, // the internal gateway serves everything
		{Internal, "app.ns.svc.cluster.local:80", "local"},
		{Internal, "app.ns", "local"},
		{Internal, "other.example.com", "<404>"},
		{External, "[::1]:8080", "<404>"},
	}
	for _, c := range cases {
		if got := backendOf(tbl.Lookup(c.listener, c.host, "/", http.Header{})); got != c.want {
			t.Errorf("%s %s: got %s, want %s", c.listener, c.host, got, c.want)
		}
	}
	if tbl.Generations["ns/app"] != 1 {
		t.Errorf("generation not recorded: %v", tbl.Generations)
	}
	// Internal listener: (path + its InsertProbe copy) x 3 hosts.
	if n := tbl.Len("ns/app"); n != 6 {
		t.Errorf("Len = %d", n)
	}
}

func TestPrefixAndHeaderPrecedence(t *testing.T) {
	tag := header.RouteTagKey // Knative-Serving-Tag
	ing := mkIngress("app", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"h"},
		path("", nil, split("default", 0, nil)), // spec order puts the catch-all first on purpose
		path("/foo", nil, split("foo", 0, nil)),
		path("/foo/bar", nil, split("foobar", 0, nil)),
		path("", map[string]string{tag: "blue"}, split("blue", 0, nil)),
		path("/foo", map[string]string{tag: "green"}, split("green-foo", 0, nil)),
	))
	tbl := BuildTable([]*v1alpha1.Ingress{ing})
	cases := []struct {
		path, tag, want string
	}{
		{"/", "", "default"},
		{"/other", "", "default"},
		{"/foo", "", "foo"},
		{"/foobar", "", "foo"}, // Envoy prefix match is a string prefix
		{"/foo/bar/baz", "", "foobar"},
		{"/Foo", "", "default"}, // case-sensitive
		{"/foo/bar", "blue", "blue"},
		{"/foo", "green", "green-foo"},
		{"/", "green", "default"},
		{"/foo", "red", "foo"},
		{"/", "", "default"},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.tag != "" {
			h.Set(tag, c.tag)
		}
		if got := backendOf(tbl.Lookup(External, "h", c.path, h)); got != c.want {
			t.Errorf("path %q tag %q: got %s, want %s", c.path, c.tag, got, c.want)
		}
	}
	// An empty header value does not match a non-empty Exact.
	h := http.Header{tag: {""}}
	if got := backendOf(tbl.Lookup(External, "h", "/", h)); got != "default" {
		t.Errorf("empty tag: got %s", got)
	}
}

func TestProbeRouteCarriesIngressHash(t *testing.T) {
	ing := mkIngress("app", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"h"},
		path("", nil, split("s", 0, nil))))
	tbl := BuildTable([]*v1alpha1.Ingress{ing})
	sum, err := ingress.ComputeHash(ing)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(header.HashKey, header.HashValueOverride)
	r := tbl.Lookup(External, "h", "/", h)
	if r == nil || r.AppendHeaders[header.HashKey] != hex.EncodeToString(sum[:]) {
		t.Fatalf("probe route: %+v", r)
	}
	// Without the override value the plain route is used and the request's value passes.
	h.Set(header.HashKey, "abc")
	if r := tbl.Lookup(External, "h", "/", h); r == nil || r.AppendHeaders[header.HashKey] != "" {
		t.Fatalf("plain route: %+v", r)
	}
}

func TestSplitPercentDistribution(t *testing.T) {
	ing := mkIngress("app", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"h"},
		path("", nil, split("a", 20, nil), split("b", 80, nil), split("never", 0, nil))))
	r := BuildTable([]*v1alpha1.Ingress{ing}).Lookup(External, "h", "/", http.Header{})
	rnd := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 20000
	for range n {
		counts[r.Pick(rnd.IntN).Name]++
	}
	if a := float64(counts["a"]) / n; a < 0.18 || a > 0.22 {
		t.Errorf("a got %.3f of the traffic, want ~0.20 (%v)", a, counts)
	}
	if counts["never"] != 0 {
		t.Errorf("0%% split got traffic: %v", counts)
	}
	// Boundaries: [0,20) -> a, [20,100) -> b.
	if got := r.Pick(func(int) int { return 19 }).Name; got != "a" {
		t.Errorf("19 -> %s", got)
	}
	if got := r.Pick(func(int) int { return 20 }).Name; got != "b" {
		t.Errorf("20 -> %s", got)
	}
	// A single split without a percent takes everything (SetDefaults).
	one := mkIngress("one", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"one"}, path("", nil, split("x", 0, nil))))
	if s := BuildTable([]*v1alpha1.Ingress{one}).Lookup(External, "one", "/", nil).Splits[0]; s.Percent != 100 {
		t.Errorf("single split percent = %d", s.Percent)
	}
}

func TestHostConflictAndBadIngress(t *testing.T) {
	a := mkIngress("a", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"h"}, path("", nil, split("from-a", 0, nil))))
	b := mkIngress("b", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"h"}, path("/x", nil, split("from-b", 0, nil))))
	bad := mkIngress("bad", 2, v1alpha1.IngressRule{Hosts: []string{"bad"}}) // no HTTP block
	tbl := BuildTable([]*v1alpha1.Ingress{b, bad, a})
	if got := backendOf(tbl.Lookup(External, "h", "/x", http.Header{})); got != "from-a" {
		t.Errorf("conflicting host: got %s, want the first Ingress by name", got)
	}
	if tbl.Failed["ns/bad"] == nil {
		t.Errorf("bad ingress not reported: %v", tbl.Failed)
	}
	if _, ok := tbl.Generations["ns/bad"]; ok {
		t.Error("bad ingress in table")
	}
}
