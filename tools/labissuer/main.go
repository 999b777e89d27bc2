// Command labissuer is a test stand-in for cert-manager's controller (selfSigned and CA issuers only), lab only; follows cert-manager's documented Secret layout.
//
// cert-manager's controller binary cannot be built here (its cmd/* modules are not published), so
// the lab cluster runs this instead, next to cert-manager's own CRDs. It watches Certificates,
// Issuers and ClusterIssuers (cert-manager.io/v1) in all namespaces, through the dynamic client:
//
//   - Issuer/ClusterIssuer with spec.selfSigned: Ready=True (reason IsReady). With spec.ca.secretName:
//     Ready=True (KeyPairVerified) once that Secret — in the Issuer's namespace, or for a
//     ClusterIssuer in the cluster resource namespace (--cluster-resource-namespace, "cert-manager"
//     as the Helm chart sets it) — holds a CA certificate and key; otherwise Ready=False
//     (ErrGetKeyPair / ErrInvalidKeyPair) as cert-manager reports it. Other issuer types are ignored.
//   - Certificate: (re-)issued directly (no CertificateRequest objects) when cert-manager would issue:
//     Secret missing or incomplete, key pair broken, issued by another issuer or for another
//     Certificate, key or certificate not matching the spec, or renewal time reached. The Secret,
//     its annotations and label, and the Certificate status (Ready/Issuing conditions, notBefore,
//     notAfter, renewalTime, revision, failure back-off) are what cert-manager writes; see issue.go.
//
// Lab extras: --renew-every forces re-issuance at that interval (to exercise key rotation), and one
// log line per issuance. GET /healthz (and /livez, /readyz) on --healthz-listen-address answers 200
// once the informer caches have synced.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

var (
	gvrCertificates   = schema.GroupVersionResource{Group: groupName, Version: "v1", Resource: "certificates"}
	gvrIssuers        = schema.GroupVersionResource{Group: groupName, Version: "v1", Resource: "issuers"}
	gvrClusterIssuers = schema.GroupVersionResource{Group: groupName, Version: "v1", Resource: "clusterissuers"}
	gvrSecrets        = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

const (
	kindCertificate   = "Certificate"
	kindIssuer        = "Issuer"
	kindClusterIssuer = "ClusterIssuer"

	indexBySecret   = "secret"    // Certificates by namespace/spec.secretName; issuers by the namespace/name of their CA Secret
	indexByIssuer   = "issuer"    // Certificates by Kind/namespace/name of the issuer they reference
	fieldManager    = "labissuer" // cert-manager's is "cert-manager-certificates-issuing"; ours is ours
	conditionReady  = "Ready"
	conditionIssues = "Issuing"
)

// Options configure a Controller.
type Options struct {
	ClusterResourceNamespace string
	RenewEvery               time.Duration
	Resync                   time.Duration
	BackoffMin, BackoffMax   time.Duration
	Log                      *slog.Logger
	Now                      func() time.Time
}

type itemKey struct{ Kind, Namespace, Name string }

func (k itemKey) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// Controller reconciles Certificates, Issuers and ClusterIssuers with one worker.
type Controller struct {
	client  dynamic.Interface
	opts    Options
	log     *slog.Logger
	factory dynamicinformer.DynamicSharedInformerFactory
	certs   cache.SharedIndexInformer
	issuers cache.SharedIndexInformer
	cissuer cache.SharedIndexInformer
	secrets cache.SharedIndexInformer
	queue   workqueue.TypedRateLimitingInterface[itemKey]
	synced  atomic.Bool
}

// NewController sets up the informers (not started) and the work queue.
func NewController(client dynamic.Interface, opts Options) (*Controller, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Controller{client: client, opts: opts, log: opts.Log}
	c.factory = dynamicinformer.NewDynamicSharedInformerFactory(client, opts.Resync)
	c.certs = c.factory.ForResource(gvrCertificates).Informer()
	c.issuers = c.factory.ForResource(gvrIssuers).Informer()
	c.cissuer = c.factory.ForResource(gvrClusterIssuers).Informer()
	c.secrets = c.factory.ForResource(gvrSecrets).Informer()
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[itemKey](),
		workqueue.TypedRateLimitingQueueConfig[itemKey]{Name: "labissuer"})

	if err := c.certs.AddIndexers(cache.Indexers{
		indexBySecret: func(obj any) ([]string, error) {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return nil, nil
			}
			name, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			return []string{u.GetNamespace() + "/" + name}, nil
		},
		indexByIssuer: func(obj any) ([]string, error) {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return nil, nil
			}
			if k, ok := issuerKeyOf(u); ok {
				return []string{k.String()}, nil
			}
			return nil, nil
		},
	}); err != nil {
		return nil, err
	}
	caSecretIndex := func(obj any) ([]string, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, nil
		}
		name, found, _ := unstructured.NestedString(u.Object, "spec", "ca", "secretName")
		if !found {
			return nil, nil
		}
		ns := u.GetNamespace()
		if ns == "" {
			ns = opts.ClusterResourceNamespace
		}
		return []string{ns + "/" + name}, nil
	}
	for _, inf := range []cache.SharedIndexInformer{c.issuers, c.cissuer} {
		if err := inf.AddIndexers(cache.Indexers{indexBySecret: caSecretIndex}); err != nil {
			return nil, err
		}
	}

	enqueueAs := func(kind string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				ns, name, _ := cache.SplitMetaNamespaceKey(key)
				c.queue.Add(itemKey{kind, ns, name})
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add}
	}
	for kind, inf := range map[string]cache.SharedIndexInformer{kindCertificate: c.certs, kindIssuer: c.issuers, kindClusterIssuer: c.cissuer} {
		if _, err := inf.AddEventHandler(enqueueAs(kind)); err != nil {
			return nil, err
		}
	}
	onSecret := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		c.enqueueIndexed(c.certs, indexBySecret, key, kindCertificate)
		c.enqueueIndexed(c.issuers, indexBySecret, key, kindIssuer)
		c.enqueueIndexed(c.cissuer, indexBySecret, key, kindClusterIssuer)
	}
	if _, err := c.secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onSecret,
		UpdateFunc: func(old, obj any) {
			o, n := old.(*unstructured.Unstructured), obj.(*unstructured.Unstructured)
			if o.GetResourceVersion() != n.GetResourceVersion() { // skip resyncs
				onSecret(obj)
			}
		},
		DeleteFunc: onSecret,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueueIndexed(inf cache.SharedIndexInformer, index, value, kind string) {
	objs, _ := inf.GetIndexer().ByIndex(index, value)
	for _, o := range objs {
		u := o.(*unstructured.Unstructured)
		c.queue.Add(itemKey{kind, u.GetNamespace(), u.GetName()})
	}
}

// issuerKeyOf is the queue key of the issuer a Certificate references (only cert-manager.io issuers).
func issuerKeyOf(u *unstructured.Unstructured) (itemKey, bool) {
	name, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "name")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "kind")
	group, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "group")
	ref := IssuerRef{Name: name, Kind: kind, Group: group}
	if ref.EffectiveGroup() != groupName {
		return itemKey{}, false
	}
	switch ref.EffectiveKind() {
	case kindIssuer:
		return itemKey{kindIssuer, u.GetNamespace(), name}, true
	case kindClusterIssuer:
		return itemKey{kindClusterIssuer, "", name}, true
	}
	return itemKey{}, false
}

// Start starts the informers and waits for their caches.
func (c *Controller) Start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.certs.HasSynced, c.issuers.HasSynced, c.cissuer.HasSynced, c.secrets.HasSynced) {
		return errors.New("informer caches did not sync")
	}
	c.synced.Store(true)
	return nil
}

// Run starts the informers and processes the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	c.log.Info("caches synced", "clusterResourceNamespace", c.opts.ClusterResourceNamespace, "renewEvery", c.opts.RenewEvery.String())
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.processNext(ctx) {
	}
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	var after time.Duration
	var err error
	switch key.Kind {
	case kindCertificate:
		after, err = c.syncCertificate(ctx, key.Namespace, key.Name)
	default:
		err = c.syncIssuer(ctx, key)
	}
	if err != nil {
		c.log.Error("sync failed, will retry", "item", key.String(), "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if after > 0 {
		c.queue.AddAfter(key, after)
	}
	return true
}

// ---- issuers ----

type issuerSpec struct {
	SelfSigned *struct {
		CRLDistributionPoints []string `json:"crlDistributionPoints"`
	} `json:"selfSigned"`
	CA *struct {
		SecretName             string   `json:"secretName"`
		CRLDistributionPoints  []string `json:"crlDistributionPoints"`
		OCSPServers            []string `json:"ocspServers"`
		IssuingCertificateURLs []string `json:"issuingCertificateURLs"`
	} `json:"ca"`
}

func parseIssuerSpec(u *unstructured.Unstructured) (issuerSpec, error) {
	var s issuerSpec
	spec, ok := u.Object["spec"].(map[string]any)
	if !ok {
		return s, nil
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(raw, &s)
	return s, err
}

// issuerState evaluates an issuer as cert-manager's Setup does. supported is false for issuer types
// other than selfSigned and CA.
func (c *Controller) issuerState(u *unstructured.Unstructured) (iss *Issuer, supported bool, reason, message string) {
	spec, err := parseIssuerSpec(u)
	if err != nil {
		return nil, true, "ErrInitIssuer", fmt.Sprintf("Error initializing issuer: %v", err)
	}
	switch {
	case spec.SelfSigned != nil:
		return &Issuer{SelfSigned: true, CRLDistributionPoints: spec.SelfSigned.CRLDistributionPoints}, true, "IsReady", ""
	case spec.CA != nil:
		ns := u.GetNamespace()
		if ns == "" {
			ns = c.opts.ClusterResourceNamespace
		}
		const prefix = "Error getting keypair for CA issuer: "
		sec, err := c.cachedSecret(ns, spec.CA.SecretName)
		if err != nil {
			return nil, true, "ErrGetKeyPair", prefix + err.Error()
		}
		iss, err := CAIssuerFromSecret(ns, spec.CA.SecretName, sec.Data)
		if err != nil {
			return nil, true, "ErrGetKeyPair", prefix + err.Error()
		}
		if !iss.CACerts[0].IsCA {
			return nil, true, "ErrInvalidKeyPair", prefix + "certificate is not a CA"
		}
		iss.CRLDistributionPoints = spec.CA.CRLDistributionPoints
		iss.OCSPServers = spec.CA.OCSPServers
		iss.IssuingCertificateURLs = spec.CA.IssuingCertificateURLs
		return iss, true, "KeyPairVerified", "Signing CA verified"
	}
	return nil, false, "", ""
}

func (c *Controller) issuerInformer(kind string) cache.SharedIndexInformer {
	if kind == kindClusterIssuer {
		return c.cissuer
	}
	return c.issuers
}

func (c *Controller) syncIssuer(ctx context.Context, key itemKey) error {
	obj, exists, err := c.issuerInformer(key.Kind).GetIndexer().GetByKey(metaKey(key.Namespace, key.Name))
	if err != nil || !exists {
		return err
	}
	u := obj.(*unstructured.Unstructured)
	iss, supported, reason, message := c.issuerState(u)
	if !supported {
		return nil
	}
	status := statusOf(u)
	cond := "False"
	if iss != nil {
		cond = "True"
	}
	setCondition(status, conditionReady, cond, reason, message, u.GetGeneration(), c.opts.Now())
	if err := c.updateStatus(ctx, gvrForKind(key.Kind), u, status); err != nil {
		return err
	}
	// Certificates waiting for this issuer get another look.
	c.enqueueIndexed(c.certs, indexByIssuer, key.String(), kindCertificate)
	return nil
}

func gvrForKind(kind string) schema.GroupVersionResource {
	switch kind {
	case kindIssuer:
		return gvrIssuers
	case kindClusterIssuer:
		return gvrClusterIssuers
	}
	return gvrCertificates
}

// resolveIssuer finds the issuer a Certificate references and its signing material; when it cannot
// sign yet, a message says why (cert-manager would leave the CertificateRequest pending).
func (c *Controller) resolveIssuer(crt *Certificate) (*Issuer, string) {
	ref := crt.Spec.IssuerRef
	if ref.EffectiveGroup() != groupName {
		return nil, fmt.Sprintf("issuer group %q is not served by this stand-in", ref.EffectiveGroup())
	}
	var inf cache.SharedIndexInformer
	ns := crt.Namespace
	switch ref.EffectiveKind() {
	case kindIssuer:
		inf = c.issuers
	case kindClusterIssuer:
		inf, ns = c.cissuer, ""
	default:
		return nil, fmt.Sprintf("issuer kind %q is not served by this stand-in", ref.Kind)
	}
	obj, exists, _ := inf.GetIndexer().GetByKey(metaKey(ns, ref.Name))
	if !exists {
		return nil, fmt.Sprintf("Referenced %q not found: %s.%s %q not found", ref.EffectiveKind(), strings.ToLower(ref.EffectiveKind()), groupName, ref.Name)
	}
	iss, supported, _, message := c.issuerState(obj.(*unstructured.Unstructured))
	switch {
	case !supported:
		return nil, fmt.Sprintf("%s is neither selfSigned nor CA, which are all this stand-in serves", ref)
	case iss == nil:
		return nil, fmt.Sprintf("%s is not ready: %s", ref, message)
	}
	return iss, ""
}

// ---- certificates ----

func (c *Controller) syncCertificate(ctx context.Context, namespace, name string) (time.Duration, error) {
	obj, exists, err := c.certs.GetIndexer().GetByKey(metaKey(namespace, name))
	if err != nil || !exists {
		return 0, err
	}
	u := obj.(*unstructured.Unstructured)
	if u.GetDeletionTimestamp() != nil {
		return 0, nil
	}
	now := c.opts.Now()
	status := statusOf(u)
	crt, err := ParseCertificate(u)
	if err != nil {
		setCondition(status, conditionReady, "False", "InvalidSpec", err.Error(), u.GetGeneration(), now)
		return 0, c.updateStatus(ctx, gvrCertificates, u, status)
	}

	sec, err := c.cachedSecret(namespace, crt.Spec.SecretName)
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	ev := Evaluate(crt, sec.State(), now, c.opts.RenewEvery)
	if ev.Issue {
		// The cache may not have seen our own last write yet: confirm with the API server.
		if sec, err = c.liveSecret(ctx, namespace, crt.Spec.SecretName); err != nil {
			return 0, err
		}
		ev = Evaluate(crt, sec.State(), now, c.opts.RenewEvery)
	}

	if !ev.Issue {
		if sec.obj != nil && ev.Cert != nil {
			if err := c.syncSecretMetadata(ctx, crt, sec.obj, ev); err != nil {
				return 0, err
			}
		}
		setReadiness(status, ev, u.GetGeneration(), now)
		// A pending issuance that is no longer needed ends; a failed one stays on record (Issuing
		// False, lastFailureTime, failedIssuanceAttempts) until the next successful issuance, as in
		// cert-manager, where only the issuing controller clears them.
		if cond := findCondition(status, conditionIssues); cond != nil && cond["status"] == "True" {
			removeCondition(status, conditionIssues)
		}
		if err := c.updateStatus(ctx, gvrCertificates, u, status); err != nil {
			return 0, err
		}
		return untilRenewal(ev.RenewalTime, now), nil
	}

	// An issuance is due.
	setReadiness(status, ev, u.GetGeneration(), now)
	if prev := findCondition(status, conditionIssues); prev == nil || prev["status"] != "False" || prev["observedGeneration"] != u.GetGeneration() {
		setCondition(status, conditionIssues, "True", ev.IssueReason, ev.IssueMessage, u.GetGeneration(), now)
	} else if wait := c.backoff(status, now); wait > 0 {
		// The last attempt for this generation failed: cert-manager backs off before retrying.
		return wait, c.updateStatus(ctx, gvrCertificates, u, status)
	} else {
		setCondition(status, conditionIssues, "True", ev.IssueReason, ev.IssueMessage, u.GetGeneration(), now)
	}
	iss, pending := c.resolveIssuer(crt)
	if iss == nil {
		c.log.Info("waiting for issuer", "certificate", crt.Key(), "reason", ev.IssueReason, "detail", pending)
		return 0, c.updateStatus(ctx, gvrCertificates, u, status)
	}
	var existingKey []byte
	if sec.obj != nil {
		existingKey = sec.Data[keyTLSKey]
	}
	issued, err := Issue(crt, iss, existingKey, now)
	if err != nil {
		msg := fmt.Sprintf("The certificate request has failed to complete and will be retried: %v", err)
		setCondition(status, conditionIssues, "False", "Failed", msg, u.GetGeneration(), now)
		status["lastFailureTime"] = now.UTC().Format(time.RFC3339)
		attempts, _, _ := unstructured.NestedInt64(status, "failedIssuanceAttempts")
		status["failedIssuanceAttempts"] = attempts + 1
		c.log.Error("issuance failed", "certificate", crt.Key(), "err", err)
		if err := c.updateStatus(ctx, gvrCertificates, u, status); err != nil {
			return 0, err
		}
		return c.backoff(status, now), nil
	}
	written, err := c.writeSecret(ctx, crt, sec.obj, issued)
	if err != nil {
		return 0, err
	}
	after := Evaluate(crt, secretFromObject(written).State(), now, c.opts.RenewEvery)
	revision, err := c.completeIssuance(ctx, crt, after, now)
	if err != nil {
		return 0, err
	}
	c.log.Info("issued certificate",
		"certificate", crt.Key(), "secret", crt.Namespace+"/"+crt.Spec.SecretName, "issuer", crt.Spec.IssuerRef.String(),
		"reason", ev.IssueReason, "revision", revision, "serial", fmt.Sprintf("%x", issued.Cert.SerialNumber),
		"subject", issued.Cert.Subject.String(), "dnsNames", issued.Cert.DNSNames, "isCA", issued.Cert.IsCA,
		"notAfter", issued.Cert.NotAfter.UTC().Format(time.RFC3339), "newKey", !issued.KeyReused)
	return untilRenewal(after.RenewalTime, now), nil
}

// completeIssuance records a successful issuance on the live Certificate (revision + 1, Ready from
// the new Secret, no Issuing condition, failure fields cleared), as cert-manager's issuing controller.
func (c *Controller) completeIssuance(ctx context.Context, crt *Certificate, ev Evaluation, now time.Time) (int64, error) {
	u, err := c.client.Resource(gvrCertificates).Namespace(crt.Namespace).Get(ctx, crt.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	status := statusOf(u)
	revision, _, _ := unstructured.NestedInt64(status, "revision")
	revision++
	status["revision"] = revision
	delete(status, "lastFailureTime")
	delete(status, "failedIssuanceAttempts")
	removeCondition(status, conditionIssues)
	setReadiness(status, ev, u.GetGeneration(), now)
	return revision, c.updateStatus(ctx, gvrCertificates, u, status)
}

// backoff is the wait left before retrying a failed issuance: the minimum back-off doubled per
// consecutive failure, capped (cert-manager's trigger controller: 1h, 2h, 4h, ... 32h).
func (c *Controller) backoff(status map[string]any, now time.Time) time.Duration {
	last, ok := status["lastFailureTime"].(string)
	if !ok {
		return 0
	}
	t, err := time.Parse(time.RFC3339, last)
	if err != nil {
		return 0
	}
	attempts, _, _ := unstructured.NestedInt64(status, "failedIssuanceAttempts")
	delay := c.opts.BackoffMin
	if attempts > 1 {
		f := float64(c.opts.BackoffMin) * math.Pow(2, float64(attempts-1))
		if f > float64(c.opts.BackoffMax) {
			delay = c.opts.BackoffMax
		} else {
			delay = time.Duration(f)
		}
	}
	return t.Add(delay).Sub(now)
}

func untilRenewal(rt *time.Time, now time.Time) time.Duration {
	if rt == nil {
		return 0
	}
	if d := rt.Sub(now); d > 0 {
		return d + 100*time.Millisecond
	}
	return time.Second
}

// setReadiness sets the Ready condition and the notBefore/notAfter/renewalTime fields as cert-manager's
// readiness controller does (the times come from whatever certificate the Secret holds).
func setReadiness(status map[string]any, ev Evaluation, generation int64, now time.Time) {
	ready := "False"
	if ev.Ready {
		ready = "True"
	}
	setCondition(status, conditionReady, ready, ev.ReadyReason, ev.ReadyMessage, generation, now)
	setTime(status, "notBefore", nil)
	setTime(status, "notAfter", nil)
	setTime(status, "renewalTime", nil)
	if ev.Cert != nil {
		setTime(status, "notBefore", &ev.Cert.NotBefore)
		setTime(status, "notAfter", &ev.Cert.NotAfter)
		setTime(status, "renewalTime", ev.RenewalTime)
	}
}

// ---- secrets ----

type secret struct {
	obj         *unstructured.Unstructured // nil: does not exist
	Data        map[string][]byte
	Annotations map[string]string
}

func (s secret) State() SecretState {
	return SecretState{Exists: s.obj != nil, Data: s.Data, Annotations: s.Annotations}
}

func secretFromObject(u *unstructured.Unstructured) secret {
	s := secret{obj: u, Annotations: u.GetAnnotations()}
	if data, ok := u.Object["data"].(map[string]any); ok {
		s.Data = make(map[string][]byte, len(data))
		for k, v := range data {
			str, _ := v.(string)
			b, err := base64.StdEncoding.DecodeString(str)
			if err != nil {
				b = nil
			}
			s.Data[k] = b
		}
	}
	return s
}

// cachedSecret reads a Secret from the informer cache; a missing one is an empty secret and a
// NotFound error worded as the API server's.
func (c *Controller) cachedSecret(namespace, name string) (secret, error) {
	obj, exists, err := c.secrets.GetIndexer().GetByKey(metaKey(namespace, name))
	if err != nil {
		return secret{}, err
	}
	if !exists {
		return secret{}, apierrors.NewNotFound(schema.GroupResource{Resource: "secret"}, name) // worded as a Secret lister's
	}
	return secretFromObject(obj.(*unstructured.Unstructured)), nil
}

func (c *Controller) liveSecret(ctx context.Context, namespace, name string) (secret, error) {
	u, err := c.client.Resource(gvrSecrets).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return secret{}, nil
	}
	if err != nil {
		return secret{}, err
	}
	return secretFromObject(u), nil
}

// writeSecret creates or updates the target Secret with the issued data and cert-manager's metadata.
// Data keys and metadata of others are kept; the type of an existing Secret is kept (immutable).
func (c *Controller) writeSecret(ctx context.Context, crt *Certificate, existing *unstructured.Unstructured, issued *Issued) (*unstructured.Unstructured, error) {
	labels, annotations := SecretMetadata(crt, issued.Cert)
	client := c.client.Resource(gvrSecrets).Namespace(crt.Namespace)
	if existing == nil {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1",
			"kind":       "Secret",
			"type":       secretTypeTLS,
		}}
		u.SetNamespace(crt.Namespace)
		u.SetName(crt.Spec.SecretName)
		u.SetLabels(labels)
		u.SetAnnotations(annotations)
		setSecretData(u, issued.Data)
		return client.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager})
	}
	u := existing.DeepCopy()
	u.SetLabels(mergeMetadata(u.GetLabels(), labels, nil))
	u.SetAnnotations(mergeMetadata(u.GetAnnotations(), annotations, certificateDetailAnnotations))
	if _, ok := u.Object["type"]; !ok {
		u.Object["type"] = secretTypeTLS
	}
	setSecretData(u, issued.Data)
	if _, ok := issued.Data[keyCACert]; !ok {
		unstructured.RemoveNestedField(u.Object, "data", keyCACert)
	}
	return client.Update(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager})
}

func setSecretData(u *unstructured.Unstructured, data map[string][]byte) {
	m, _ := u.Object["data"].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	for k, v := range data {
		m[k] = base64.StdEncoding.EncodeToString(v)
	}
	u.Object["data"] = m
}

// mergeMetadata returns current with want applied; keys in managed that want lacks are removed.
func mergeMetadata(current, want map[string]string, managed []string) map[string]string {
	out := maps.Clone(current)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range managed {
		if _, ok := want[k]; !ok {
			delete(out, k)
		}
	}
	maps.Copy(out, want)
	return out
}

// syncSecretMetadata restores the labels and annotations cert-manager keeps on an issued Secret
// (its post-issuance policy chain) without re-issuing.
func (c *Controller) syncSecretMetadata(ctx context.Context, crt *Certificate, obj *unstructured.Unstructured, ev Evaluation) error {
	labels, annotations := SecretMetadata(crt, ev.Cert)
	newLabels := mergeMetadata(obj.GetLabels(), labels, nil)
	newAnnotations := mergeMetadata(obj.GetAnnotations(), annotations, certificateDetailAnnotations)
	if maps.Equal(newLabels, obj.GetLabels()) && maps.Equal(newAnnotations, obj.GetAnnotations()) {
		return nil
	}
	u := obj.DeepCopy()
	u.SetLabels(newLabels)
	u.SetAnnotations(newAnnotations)
	_, err := c.client.Resource(gvrSecrets).Namespace(u.GetNamespace()).Update(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}

// ---- status helpers (unstructured) ----

func metaKey(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func statusOf(u *unstructured.Unstructured) map[string]any {
	if s, ok := u.Object["status"].(map[string]any); ok {
		return runtime.DeepCopyJSON(s)
	}
	return map[string]any{}
}

func findCondition(status map[string]any, typ string) map[string]any {
	conds, _ := status["conditions"].([]any)
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// setCondition sets a condition as cert-manager's SetCertificateCondition/SetIssuerCondition: the
// lastTransitionTime only moves when the status changes.
func setCondition(status map[string]any, typ, cond, reason, message string, generation int64, now time.Time) {
	m := map[string]any{
		"type":               typ,
		"status":             cond,
		"reason":             reason,
		"lastTransitionTime": now.UTC().Format(time.RFC3339),
		"observedGeneration": generation,
	}
	if message != "" {
		m["message"] = message
	}
	conds, _ := status["conditions"].([]any)
	for i, c := range conds {
		old, ok := c.(map[string]any)
		if !ok || old["type"] != typ {
			continue
		}
		if old["status"] == cond {
			if t, ok := old["lastTransitionTime"]; ok {
				m["lastTransitionTime"] = t
			}
		}
		conds[i] = m
		status["conditions"] = conds
		return
	}
	status["conditions"] = append(conds, m)
}

func removeCondition(status map[string]any, typ string) {
	conds, _ := status["conditions"].([]any)
	out := conds[:0]
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		delete(status, "conditions")
		return
	}
	status["conditions"] = out
}

func setTime(status map[string]any, field string, t *time.Time) {
	if t == nil {
		delete(status, field)
		return
	}
	status[field] = t.UTC().Format(time.RFC3339)
}

// updateStatus writes the top-level status fields that differ from u's through the status
// subresource, as a JSON merge patch: fields this sync did not change (revision, notably, which only
// completeIssuance sets from a fresh read) are left alone even when u is a stale cached copy.
func (c *Controller) updateStatus(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, status map[string]any) error {
	old, _ := u.Object["status"].(map[string]any)
	diff := map[string]any{}
	for k, v := range status {
		if !reflect.DeepEqual(old[k], v) {
			diff[k] = v
		}
	}
	for k := range old {
		if _, ok := status[k]; !ok {
			diff[k] = nil
		}
	}
	if len(diff) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"status": diff})
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.client.Resource(gvr)
	if ns := u.GetNamespace(); ns != "" {
		ri = c.client.Resource(gvr).Namespace(ns)
	}
	_, err = ri.Patch(ctx, u.GetName(), types.MergePatchType, body, metav1.PatchOptions{FieldManager: fieldManager}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ---- main ----

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else in-cluster)")
		clusterNS  = flag.String("cluster-resource-namespace", "cert-manager", "namespace of the Secrets ClusterIssuers refer to (cert-manager's Helm chart sets its own namespace)")
		renewEvery = flag.Duration("renew-every", 0, "lab only: also re-issue every certificate this long after its notBefore (0: off)")
		healthAddr = flag.String("healthz-listen-address", ":9403", "address of /healthz, /livez and /readyz (cert-manager's controller uses 9403)")
		resync     = flag.Duration("resync", 10*time.Minute, "informer resync period")
		backoffMin = flag.Duration("certificate-request-minimum-backoff-duration", time.Hour, "back-off after the first failed issuance, doubled per failure")
		backoffMax = flag.Duration("certificate-request-maximum-backoff-duration", 32*time.Hour, "maximum back-off between failed issuances")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*kubeconfig, Options{
		ClusterResourceNamespace: *clusterNS, RenewEvery: *renewEvery, Resync: *resync,
		BackoffMin: *backoffMin, BackoffMax: *backoffMax, Log: log,
	}, *healthAddr); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, opts Options, healthAddr string) error {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return err
	}
	cfg.UserAgent = "labissuer"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c, err := NewController(client, opts)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: healthAddr, Handler: c.healthHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("health server", "err", err)
			stop()
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return c.Run(ctx)
}

func (c *Controller) healthHandler() http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, _ *http.Request) {
		if !c.synced.Load() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, h)
	}
	return mux
}
