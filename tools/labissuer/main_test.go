package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func newFakeClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gvrCertificates:   "CertificateList",
		gvrIssuers:        "IssuerList",
		gvrClusterIssuers: "ClusterIssuerList",
		gvrSecrets:        "SecretList",
	}, objs...)
}

// testOptions: the controller's log is discarded unless LABISSUER_TEST_LOG is set.
func testOptions() Options {
	var out io.Writer = io.Discard
	if os.Getenv("LABISSUER_TEST_LOG") != "" {
		out = os.Stderr
	}
	return Options{
		ClusterResourceNamespace: "cert-manager",
		BackoffMin:               time.Hour,
		BackoffMax:               32 * time.Hour,
		Log:                      slog.New(slog.NewTextHandler(out, nil)),
	}
}

// labObject returns a copy of one of the project's objects, at generation 1.
func labObject(t *testing.T, key string) *unstructured.Unstructured {
	t.Helper()
	u := labObjects(t)[key].DeepCopy()
	u.SetGeneration(1)
	return u
}

func getObject(t *testing.T, client *dynamicfake.FakeDynamicClient, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := client.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u
}

func readyCondition(u *unstructured.Unstructured) map[string]any {
	return findCondition(statusOf(u), conditionReady)
}

func secretData(t *testing.T, u *unstructured.Unstructured, key string) []byte {
	t.Helper()
	s, _, _ := unstructured.NestedString(u.Object, "data", key)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("secret %s: data %s missing (%v)", u.GetName(), key, err)
	}
	return b
}

// One reconcile of the CA Certificate against the fake API: the Secret is created in cert-manager's
// layout and the Certificate's status says Ready; a second reconcile changes nothing.
func TestReconcileCreatesSecretAndSetsReady(t *testing.T) {
	client := newFakeClient(labObject(t, "ClusterIssuer/arca-selfsigned"), labObject(t, "Certificate/arca-ca"))
	c, err := NewController(client, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	after, err := c.syncCertificate(ctx, "cert-manager", "arca-ca")
	if err != nil {
		t.Fatal(err)
	}
	sec := getObject(t, client, gvrSecrets, "cert-manager", "arca-ca")
	if typ, _, _ := unstructured.NestedString(sec.Object, "type"); typ != "kubernetes.io/tls" {
		t.Errorf("secret type %q", typ)
	}
	if sec.GetLabels()["controller.cert-manager.io/fao"] != "true" {
		t.Errorf("labels %v", sec.GetLabels())
	}
	ann := sec.GetAnnotations()
	for k, v := range map[string]string{
		"cert-manager.io/certificate-name": "arca-ca",
		"cert-manager.io/issuer-name":      "arca-selfsigned",
		"cert-manager.io/issuer-kind":      "ClusterIssuer",
		"cert-manager.io/issuer-group":     "cert-manager.io",
		"cert-manager.io/common-name":      "Arca Kind CA",
		"cert-manager.io/alt-names":        "",
	} {
		if got, ok := ann[k]; !ok || got != v {
			t.Errorf("annotation %s = %q, want %q", k, got, v)
		}
	}
	tlsCrt, caCrt, tlsKey := secretData(t, sec, "tls.crt"), secretData(t, sec, "ca.crt"), secretData(t, sec, "tls.key")
	if string(tlsCrt) != string(caCrt) {
		t.Error("selfSigned: ca.crt differs from tls.crt")
	}
	certs, err := DecodeCertificates(tlsCrt)
	if err != nil || !certs[0].IsCA || certs[0].Subject.CommonName != "Arca Kind CA" {
		t.Fatalf("tls.crt: %v", err)
	}

	crt := getObject(t, client, gvrCertificates, "cert-manager", "arca-ca")
	cond := readyCondition(crt)
	if cond == nil || cond["status"] != "True" || cond["reason"] != "Ready" || cond["message"] != MessageReady || cond["observedGeneration"] != int64(1) {
		t.Fatalf("Ready condition %v", cond)
	}
	if findCondition(statusOf(crt), conditionIssues) != nil {
		t.Error("Issuing condition left after issuance")
	}
	st := statusOf(crt)
	if rev, _, _ := unstructured.NestedInt64(st, "revision"); rev != 1 {
		t.Errorf("revision %d, want 1", rev)
	}
	if st["notAfter"] != certs[0].NotAfter.UTC().Format(time.RFC3339) || st["notBefore"] != certs[0].NotBefore.UTC().Format(time.RFC3339) {
		t.Errorf("notBefore/notAfter %v/%v", st["notBefore"], st["notAfter"])
	}
	rt, err := time.Parse(time.RFC3339, st["renewalTime"].(string))
	if err != nil || !rt.Equal(certs[0].NotAfter.Add(-87600*time.Hour/3)) {
		t.Errorf("renewalTime %v: %v", st["renewalTime"], err)
	}
	if after < 87600*time.Hour*2/3-time.Minute {
		t.Errorf("requeue after %v, want the renewal time", after)
	}

	// Once the caches have caught up, a second reconcile neither re-issues nor rewrites.
	waitFor(t, func() bool {
		_, ok, _ := c.secrets.GetIndexer().GetByKey("cert-manager/arca-ca")
		o, _, _ := c.certs.GetIndexer().GetByKey("cert-manager/arca-ca")
		return ok && readyCondition(o.(*unstructured.Unstructured)) != nil
	})
	before := len(client.Actions())
	if _, err := c.syncCertificate(ctx, "cert-manager", "arca-ca"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions()[before:] {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("second reconcile wrote: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if got := secretData(t, getObject(t, client, gvrSecrets, "cert-manager", "arca-ca"), "tls.key"); string(got) != string(tlsKey) {
		t.Error("second reconcile changed the key")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole lab chain through the running controller: the self-signed CA, the CA ClusterIssuer
// becoming ready on its Secret, then the ingress and signing certificates signed by it.
func TestRunIssuesLabChain(t *testing.T) {
	var objs []runtime.Object
	for _, k := range []string{"ClusterIssuer/arca-selfsigned", "ClusterIssuer/arca-ca", "Certificate/arca-ca", "Certificate/arca-ingress", "Certificate/arca-signing"} {
		objs = append(objs, labObject(t, k))
	}
	client := newFakeClient(objs...)
	c, err := NewController(client, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	health := httptest.NewServer(c.healthHandler())
	defer health.Close()
	healthz := func() int {
		resp, err := http.Get(health.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := healthz(); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before sync: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	certs := map[string]string{"arca-ca": "cert-manager", "arca-ingress": "kourier-system", "arca-signing": "arca"}
	waitFor(t, func() bool {
		for name, ns := range certs {
			u, err := client.Resource(gvrCertificates).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			if cond := readyCondition(u); cond == nil || cond["status"] != "True" {
				return false
			}
		}
		return true
	})
	if code := healthz(); code != http.StatusOK {
		t.Errorf("healthz after sync: %d", code)
	}
	caIssuer := getObject(t, client, gvrClusterIssuers, "", "arca-ca")
	if cond := readyCondition(caIssuer); cond["status"] != "True" || cond["reason"] != "KeyPairVerified" || cond["message"] != "Signing CA verified" {
		t.Errorf("ClusterIssuer arca-ca Ready %v", cond)
	}
	if cond := readyCondition(getObject(t, client, gvrClusterIssuers, "", "arca-selfsigned")); cond["status"] != "True" || cond["reason"] != "IsReady" {
		t.Errorf("ClusterIssuer arca-selfsigned Ready %v", cond)
	}

	ca := secretData(t, getObject(t, client, gvrSecrets, "cert-manager", "arca-ca"), "ca.crt")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	for name, eku := range map[string]x509.ExtKeyUsage{"arca-ingress": x509.ExtKeyUsageServerAuth, "arca-signing": x509.ExtKeyUsageCodeSigning} {
		ns := certs[name]
		crt := getObject(t, client, gvrCertificates, ns, name)
		secretName, _, _ := unstructured.NestedString(crt.Object, "spec", "secretName")
		sec := getObject(t, client, gvrSecrets, ns, secretName)
		if string(secretData(t, sec, "ca.crt")) != string(ca) {
			t.Errorf("%s: ca.crt is not arca-ca's", name)
		}
		chain, err := DecodeCertificates(secretData(t, sec, "tls.crt"))
		if err != nil || len(chain) != 1 {
			t.Fatalf("%s: tls.crt %d certificates (%v), want the leaf only", name, len(chain), err)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// --renew-every: the running controller re-issues on schedule; Always rotates the key, Never keeps it.
func TestRenewEveryRotatesKeys(t *testing.T) {
	var objs []runtime.Object
	for _, k := range []string{"ClusterIssuer/arca-selfsigned", "ClusterIssuer/arca-ca", "Certificate/arca-ca", "Certificate/arca-signing"} {
		objs = append(objs, labObject(t, k))
	}
	client := newFakeClient(objs...)
	opts := testOptions()
	opts.RenewEvery = 2 * time.Second
	c, err := NewController(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	revision := func(ns, name string) int64 {
		u, err := client.Resource(gvrCertificates).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0
		}
		r, _, _ := unstructured.NestedInt64(u.Object, "status", "revision")
		return r
	}
	key := func(ns, name string) string {
		return string(secretData(t, getObject(t, client, gvrSecrets, ns, name), "tls.key"))
	}
	waitFor(t, func() bool { return revision("arca", "arca-signing") >= 1 && revision("cert-manager", "arca-ca") >= 1 })
	signingKey, caKey := key("arca", "arca-signing"), key("cert-manager", "arca-ca")
	waitFor(t, func() bool { return revision("arca", "arca-signing") >= 2 && revision("cert-manager", "arca-ca") >= 2 })
	if key("arca", "arca-signing") == signingKey {
		t.Error("arca-signing (rotationPolicy Always) kept its key")
	}
	if key("cert-manager", "arca-ca") != caKey {
		t.Error("arca-ca (rotationPolicy Never) changed its key")
	}
}

// A failed issuance (rotationPolicy Never, and the Secret's key no longer fits the spec) is recorded
// as cert-manager records it and backed off; a spec change retries at once.
func TestFailedIssuanceBacksOff(t *testing.T) {
	crtObj := labObject(t, "Certificate/arca-ca")
	client := newFakeClient(labObject(t, "ClusterIssuer/arca-selfsigned"), crtObj)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	opts := testOptions()
	opts.Now = func() time.Time { return now }
	c, err := NewController(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.syncCertificate(ctx, "cert-manager", "arca-ca"); err != nil {
		t.Fatal(err)
	}
	// Ask for a P-384 key: the Secret's P-256 key may not be replaced (Never).
	live := getObject(t, client, gvrCertificates, "cert-manager", "arca-ca")
	_ = unstructured.SetNestedField(live.Object, int64(384), "spec", "privateKey", "size")
	live.SetGeneration(2)
	if _, err := client.Resource(gvrCertificates).Namespace("cert-manager").Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	synced := func(gen int64) func() bool {
		return func() bool {
			o, ok, _ := c.certs.GetIndexer().GetByKey("cert-manager/arca-ca")
			_, sok, _ := c.secrets.GetIndexer().GetByKey("cert-manager/arca-ca")
			return ok && sok && o.(*unstructured.Unstructured).GetGeneration() == gen
		}
	}
	waitFor(t, synced(2))
	after, err := c.syncCertificate(ctx, "cert-manager", "arca-ca")
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(getObject(t, client, gvrCertificates, "cert-manager", "arca-ca"))
	issuing := findCondition(st, conditionIssues)
	if issuing == nil || issuing["status"] != "False" || issuing["reason"] != "Failed" || st["failedIssuanceAttempts"] != int64(1) || st["lastFailureTime"] != now.Format(time.RFC3339) {
		t.Fatalf("status after failure: %v", st)
	}
	if ready := findCondition(st, conditionReady); ready["status"] != "False" || ready["reason"] != ReasonSecretMismatch {
		t.Errorf("Ready %v", ready)
	}
	if rev, _, _ := unstructured.NestedInt64(st, "revision"); rev != 1 {
		t.Errorf("revision %d after a failure, want 1", rev)
	}
	if after != time.Hour {
		t.Errorf("retry after %v, want 1h", after)
	}

	// Within the back-off: no new attempt.
	waitFor(t, func() bool {
		o, _, _ := c.certs.GetIndexer().GetByKey("cert-manager/arca-ca")
		return findCondition(statusOf(o.(*unstructured.Unstructured)), conditionIssues)["status"] == "False"
	})
	now = now.Add(30 * time.Minute)
	if after, err = c.syncCertificate(ctx, "cert-manager", "arca-ca"); err != nil || after != 30*time.Minute {
		t.Fatalf("within back-off: retry after %v (%v), want 30m", after, err)
	}
	if n, _, _ := unstructured.NestedInt64(getObject(t, client, gvrCertificates, "cert-manager", "arca-ca").Object, "status", "failedIssuanceAttempts"); n != 1 {
		t.Errorf("attempts %d within back-off, want 1", n)
	}

	// A new generation asking for something else is issued at once, and the failure record cleared.
	live = getObject(t, client, gvrCertificates, "cert-manager", "arca-ca")
	_ = unstructured.SetNestedField(live.Object, "Always", "spec", "privateKey", "rotationPolicy")
	live.SetGeneration(3)
	if _, err := client.Resource(gvrCertificates).Namespace("cert-manager").Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, synced(3))
	if _, err := c.syncCertificate(ctx, "cert-manager", "arca-ca"); err != nil {
		t.Fatal(err)
	}
	st = statusOf(getObject(t, client, gvrCertificates, "cert-manager", "arca-ca"))
	_, failed := st["failedIssuanceAttempts"]
	_, failedAt := st["lastFailureTime"]
	if rev, _, _ := unstructured.NestedInt64(st, "revision"); rev != 2 || failed || failedAt || findCondition(st, conditionIssues) != nil || findCondition(st, conditionReady)["status"] != "True" {
		t.Fatalf("status after the spec was fixed: %v", st)
	}
	key, err := DecodeKey(secretData(t, getObject(t, client, gvrSecrets, "cert-manager", "arca-ca"), "tls.key"))
	if err != nil || KeyMatchesSpec(key, PrivateKey{Algorithm: "ECDSA", Size: 384}) != nil {
		t.Fatalf("new key %T does not fit the spec (%v)", key, err)
	}
}
