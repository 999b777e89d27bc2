package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"knative.dev/networking/pkg/apis/networking"
	"knative.dev/networking/pkg/apis/networking/v1alpha1"
	"knative.dev/networking/pkg/client/clientset/versioned/fake"
	listers "knative.dev/networking/pkg/client/listers/networking/v1alpha1"
	"knative.dev/pkg/apis"
)

const (
	pubLB  = "kourier.kourier-system.svc.cluster.local"
	privLB = "kourier-internal.kourier-system.svc.cluster.local"
)

func newTestController(t *testing.T, objs ...*v1alpha1.Ingress) (*Controller, *fake.Clientset, cache.Indexer) {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	var rObjs []runtime.Object
	for _, o := range objs {
		if err := indexer.Add(o); err != nil {
			t.Fatal(err)
		}
		rObjs = append(rObjs, o)
	}
	client := fake.NewSimpleClientset(rObjs...)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Controller{
		Class: testClass, Client: client, Lister: listers.NewIngressLister(indexer),
		Proxy: NewProxy(log, "cluster.local", HeaderConfig{}), PublicLB: pubLB, PrivateLB: privLB,
		Log: log, Queue: NewQueue(),
	}
	return c, client, indexer
}

func statusUpdates(client *fake.Clientset) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func TestReconcileMarksReadyAfterTableIsLive(t *testing.T) {
	ing := mkIngress("app", 3, rule(v1alpha1.IngressVisibilityExternalIP, []string{"app.example.com"}, path("", nil, split("s", 0, nil))))
	other := mkIngress("istio-one", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"other.example.com"}, path("", nil, split("s", 0, nil))))
	other.Annotations[networking.IngressClassAnnotationKey] = "istio.ingress.networking.knative.dev"
	c, client, indexer := newTestController(t, ing, other)

	// At the moment the status is written, the proxy must already serve this generation.
	client.PrependReactor("update", "ingresses", func(a clientgotesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		tbl := c.Proxy.table.Load()
		if tbl.Generations["ns/app"] != 3 || tbl.Lookup(External, "app.example.com", "/", http.Header{}) == nil {
			t.Errorf("status written before the table with generation 3 was live")
		}
		return false, nil, nil
	})

	ctx := context.Background()
	if err := c.Reconcile(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	got, err := client.NetworkingV1alpha1().Ingresses("ns").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := got.Status
	if st.ObservedGeneration != 3 || !got.IsReady() {
		t.Errorf("observedGeneration %d, ready %v", st.ObservedGeneration, got.IsReady())
	}
	for _, typ := range []string{"Ready", "NetworkConfigured", "LoadBalancerReady"} {
		if cond := st.GetCondition(apis.ConditionType(typ)); cond == nil || cond.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %+v", typ, cond)
		}
	}
	if st.PublicLoadBalancer == nil || len(st.PublicLoadBalancer.Ingress) != 1 || st.PublicLoadBalancer.Ingress[0].DomainInternal != pubLB {
		t.Errorf("public LB = %+v", st.PublicLoadBalancer)
	}
	if st.PrivateLoadBalancer == nil || len(st.PrivateLoadBalancer.Ingress) != 1 || st.PrivateLoadBalancer.Ingress[0].DomainInternal != privLB {
		t.Errorf("private LB = %+v", st.PrivateLoadBalancer)
	}
	// Another class is neither served nor touched.
	if c.Proxy.table.Load().Lookup(External, "other.example.com", "/", http.Header{}) != nil {
		t.Error("Ingress of another class is served")
	}
	if err := c.Reconcile(ctx, "ns/istio-one"); err != nil {
		t.Fatal(err)
	}
	if n := statusUpdates(client); n != 1 {
		t.Errorf("%d status updates, want 1", n)
	}

	// Once the informer has the new status, reconciling again writes nothing.
	if err := indexer.Update(got); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	if n := statusUpdates(client); n != 1 {
		t.Errorf("%d status updates after a no-op reconcile, want 1", n)
	}

	// A new generation is served and observed.
	next := got.DeepCopy()
	next.Generation = 4
	next.Spec.Rules[0].Hosts = []string{"app2.example.com"}
	if _, err := client.NetworkingV1alpha1().Ingresses("ns").Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := indexer.Update(next); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	client.ReactionChain = client.ReactionChain[1:] // drop the generation-3 check
	if err := c.Reconcile(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	got, _ = client.NetworkingV1alpha1().Ingresses("ns").Get(ctx, "app", metav1.GetOptions{})
	if got.Status.ObservedGeneration != 4 || !got.IsReady() {
		t.Errorf("after update: observedGeneration %d, ready %v", got.Status.ObservedGeneration, got.IsReady())
	}
	tbl := c.Proxy.table.Load()
	if tbl.Lookup(External, "app2.example.com", "/", http.Header{}) == nil || tbl.Lookup(External, "app.example.com", "/", http.Header{}) != nil {
		t.Error("table does not hold generation 4")
	}

	// Deletion removes the routes.
	if err := indexer.Delete(next); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	if c.Proxy.table.Load().Lookup(External, "app2.example.com", "/", http.Header{}) != nil {
		t.Error("deleted Ingress still served")
	}
}

func TestReconcileReportsTranslationFailure(t *testing.T) {
	bad := mkIngress("bad", 2, v1alpha1.IngressRule{Hosts: []string{"bad.example.com"}})
	c, client, _ := newTestController(t, bad)
	ctx := context.Background()
	if err := c.Reconcile(ctx, "ns/bad"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.NetworkingV1alpha1().Ingresses("ns").Get(ctx, "bad", metav1.GetOptions{})
	if got.IsReady() {
		t.Error("an untranslatable Ingress is Ready")
	}
	if cond := got.Status.GetCondition(v1alpha1.IngressConditionLoadBalancerReady); cond == nil || cond.Status != corev1.ConditionFalse {
		t.Errorf("LoadBalancerReady = %+v", cond)
	}
}

func TestParseKourierConfig(t *testing.T) {
	def := kourierConfig{UseRemoteAddress: true, TrustedHops: 2, CertNamespace: "a", CertName: "b"}
	got, err := parseKourierConfig(nil, def)
	if err != nil || got != def {
		t.Errorf("absent ConfigMap: %+v %v", got, err)
	}
	got, err = parseKourierConfig(map[string]string{"use-remote-address": "TRUE", "trusted-hops-count": "1",
		"certs-secret-namespace": "kourier-system", "certs-secret-name": "tls"}, kourierConfig{})
	if err != nil || got != (kourierConfig{UseRemoteAddress: true, TrustedHops: 1, CertNamespace: "kourier-system", CertName: "tls"}) {
		t.Errorf("full ConfigMap: %+v %v", got, err)
	}
	// cm.AsBool: anything but "true" is false.
	if got, _ := parseKourierConfig(map[string]string{"use-remote-address": "yes"}, def); got.UseRemoteAddress {
		t.Error(`"yes" parsed as true`)
	}
	if _, err := parseKourierConfig(map[string]string{"trusted-hops-count": "-1"}, def); err == nil {
		t.Error("negative trusted-hops-count accepted")
	}
	if _, err := parseFlags([]string{"-internal-cidrs", "10.0.0.0/8,bad"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}
