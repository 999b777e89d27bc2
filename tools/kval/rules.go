package main

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// RuleContext is the whole render plus what the rules compare it with.
type RuleContext struct {
	Objects  []*Object
	External []string // "Kind namespace/name" created outside the render (kind-setup.sh, releases)
	Routes   *Routes
}

func (c *RuleContext) exists(kind, namespace, name string) bool {
	return c.existsIn("", kind, namespace, name)
}

// existsIn also matches the API group when group is not empty ("core" for the core group).
func (c *RuleContext) existsIn(group, kind, namespace, name string) bool {
	for _, o := range c.Objects {
		if o.GVK.Kind == kind && o.Namespace == namespace && o.Name == name {
			if group == "" || group == o.GVK.Group || (group == "core" && o.GVK.Group == "") {
				return true
			}
		}
	}
	want := kind + " " + namespace + "/" + name
	if namespace == "" {
		want = kind + " " + name
	}
	for _, e := range c.External {
		if e == want {
			return true
		}
	}
	return false
}

func runRules(c *RuleContext) Problems {
	var p Problems
	p = append(p, ruleWorkloads(c)...)
	p = append(p, ruleNamespaces(c)...)
	p = append(p, ruleSecrets(c)...)
	p = append(p, ruleEventing(c)...)
	p = append(p, ruleReferences(c)...)
	p = append(p, ruleConnectionBudget(c)...)
	p = append(p, ruleRolloutQuota(c)...)
	p = append(p, rulePromQL(c)...)
	if c.Routes != nil {
		p = append(p, ruleRoutes(c)...)
	}
	return p
}

// podSpecOf returns the pod template of a workload (nil when the object has none).
func podSpecOf(o *Object) *corev1.PodSpec {
	switch t := o.Typed.(type) {
	case *corev1.Pod:
		return &t.Spec
	case *appsv1.Deployment:
		return &t.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &t.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &t.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		return &t.Spec.Template.Spec
	case *batchv1.Job:
		return &t.Spec.Template.Spec
	case *batchv1.CronJob:
		return &t.Spec.JobTemplate.Spec.Template.Spec
	case *servingv1.Service:
		return &t.Spec.Template.Spec.PodSpec
	case *servingv1.Configuration:
		return &t.Spec.Template.Spec.PodSpec
	}
	return nil
}

// ---------------------------------------------------------------- workloads

func ruleWorkloads(c *RuleContext) Problems {
	var p Problems
	for _, o := range c.Objects {
		if prom, ok := o.Typed.(*monitoringv1.Prometheus); ok {
			checkResources(&p, o, "prometheus", prom.Spec.Resources)
			sc := prom.Spec.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				p.add(o, "spec.securityContext.runAsNonRoot must be true")
			}
			if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				p.add(o, "spec.securityContext.seccompProfile.type must be RuntimeDefault")
			}
			continue
		}
		ps := podSpecOf(o)
		if ps == nil {
			continue
		}
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			p.add(o, "uses the host's network, PID or IPC namespace")
		}
		for _, v := range ps.Volumes {
			if v.HostPath != nil {
				p.add(o, "volume %q is a hostPath", v.Name)
			}
		}
		all := make([]corev1.Container, 0, len(ps.InitContainers)+len(ps.Containers))
		all = append(all, ps.InitContainers...)
		all = append(all, ps.Containers...)
		_, isKsvc := o.Typed.(*servingv1.Service)
		for i := range all {
			ct := &all[i]
			label := fmt.Sprintf("container %q", ct.Name)
			if i < len(ps.InitContainers) {
				label = fmt.Sprintf("init container %q", ct.Name)
			}
			checkResources(&p, o, label, ct.Resources)
			checkSecurity(&p, o, label, ct.SecurityContext, ps.SecurityContext)
			checkImage(&p, o, label, ct.Image, isKsvc)
			checkEnvLiterals(&p, o, label, ct.Env)
		}
	}
	return p
}

func checkResources(p *Problems, o *Object, label string, r corev1.ResourceRequirements) {
	for _, kind := range []struct {
		field string
		list  corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := kind.list[res]
			if !ok || q.IsZero() {
				p.add(o, "%s: no resources.%s.%s", label, kind.field, res)
			}
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		rq, ok1 := r.Requests[res]
		lq, ok2 := r.Limits[res]
		if ok1 && ok2 && rq.Cmp(lq) > 0 {
			p.add(o, "%s: resources.requests.%s (%s) exceeds its limit (%s)", label, res, rq.String(), lq.String())
		}
	}
}

func checkSecurity(p *Problems, o *Object, label string, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext) {
	if sc == nil {
		p.add(o, "%s: no securityContext (needs runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation: false, capabilities.drop [ALL], seccompProfile RuntimeDefault)", label)
		return
	}
	// runAsNonRoot / runAsUser: the container's value wins over the pod's.
	var nonRoot *bool
	var uid *int64
	if psc != nil {
		nonRoot, uid = psc.RunAsNonRoot, psc.RunAsUser
	}
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid != nil && *uid == 0 {
		p.add(o, "%s: runs as root (runAsUser: 0)", label)
	}
	if nonRoot == nil || !*nonRoot {
		p.add(o, "%s: runAsNonRoot is not true", label)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.add(o, "%s: readOnlyRootFilesystem is not true", label)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.add(o, "%s: allowPrivilegeEscalation is not false", label)
	}
	if sc.Privileged != nil && *sc.Privileged {
		p.add(o, "%s: privileged", label)
	}
	dropAll := false
	if sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			if d == "ALL" {
				dropAll = true
			}
		}
		if len(sc.Capabilities.Add) > 0 {
			p.add(o, "%s: adds capabilities %v", label, sc.Capabilities.Add)
		}
	}
	if !dropAll {
		p.add(o, "%s: capabilities.drop does not contain ALL", label)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		p.add(o, "%s: seccompProfile is not RuntimeDefault", label)
	}
}

var (
	digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	tagRE    = regexp.MustCompile(`^[^@]+:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$`)
)

// imageTag returns the tag of an image reference ("" when there is none).
func imageTag(image string) string {
	last := image[strings.LastIndex(image, "/")+1:]
	if !strings.Contains(last, ":") {
		return ""
	}
	m := tagRE.FindStringSubmatch(image)
	if m == nil {
		return ""
	}
	return m[1]
}

func checkImage(p *Problems, o *Object, label, image string, knativeService bool) {
	pinned := digestRE.MatchString(image)
	tag := imageTag(strings.Split(image, "@")[0])
	if !pinned && (tag == "" || tag == "latest") {
		p.add(o, "%s: image %q is not pinned (no tag, or latest; use an exact tag or a digest)", label, image)
		return
	}
	if knativeService && !pinned && !strings.HasPrefix(image, "kind.local/") {
		p.add(o, "%s: image %q: Knative Services use kind.local/<name>:<tag> (loaded by kind-setup.sh, no tag resolution) or a digest", label, image)
	}
}

var secretishName = regexp.MustCompile(`(?i)(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)`)

func checkEnvLiterals(p *Problems, o *Object, label string, env []corev1.EnvVar) {
	for _, e := range env {
		if e.Value == "" || e.ValueFrom != nil {
			continue
		}
		if why := looksReal(e.Value); why != "" {
			if secretishName.MatchString(e.Name) || why == "PEM private key" || why == "AWS access key id" {
				p.add(o, "%s: env %s holds a literal that looks like a real secret (%s); use a secretKeyRef", label, e.Name, why)
			}
		}
	}
}

// ---------------------------------------------------------------- namespaces

func ruleNamespaces(c *RuleContext) Problems {
	var p Problems
	for _, o := range c.Objects {
		ns, ok := o.Typed.(*corev1.Namespace)
		if !ok {
			continue
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			p.add(o, "Pod Security is not enforced as restricted (label pod-security.kubernetes.io/enforce)")
		}
		var deny, quota, limits bool
		for _, x := range c.Objects {
			if x.Namespace != ns.Name {
				continue
			}
			switch t := x.Typed.(type) {
			case *networkingv1.NetworkPolicy:
				if isDefaultDeny(t) {
					deny = true
				}
			case *corev1.ResourceQuota:
				quota = true
			case *corev1.LimitRange:
				limits = true
			}
		}
		if !deny {
			p.add(o, "no default-deny NetworkPolicy (podSelector {}, policyTypes [Ingress, Egress], no rules)")
		}
		if !quota {
			p.add(o, "no ResourceQuota")
		}
		if !limits {
			p.add(o, "no LimitRange")
		}
	}
	// Every namespaced object lives in a namespace of the render or a listed external one.
	for _, o := range c.Objects {
		if o.Namespace == "" {
			continue
		}
		if !c.exists("Namespace", "", o.Namespace) {
			p.add(o, "namespace %q is neither in the render nor listed as external", o.Namespace)
		}
	}
	return p
}

func isDefaultDeny(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PodSelector.MatchLabels) > 0 || len(np.Spec.PodSelector.MatchExpressions) > 0 {
		return false
	}
	var in, eg bool
	for _, t := range np.Spec.PolicyTypes {
		in = in || t == networkingv1.PolicyTypeIngress
		eg = eg || t == networkingv1.PolicyTypeEgress
	}
	return in && eg && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0
}

// ---------------------------------------------------------------- secrets

var (
	akiaRE        = regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)
	pemKeyRE      = regexp.MustCompile(`-----BEGIN ([A-Z]+ )?PRIVATE KEY-----`)
	urlPasswordRE = regexp.MustCompile(`://[^:/@\s]+:([^@/\s]+)@`)
	placeholderRE = regexp.MustCompile(`(?i)(example|changeme|change-me|replace|placeholder|fake|dummy|not-a-secret|xxxx|redacted|fixture)`)
	tokenRE       = regexp.MustCompile(`^[A-Za-z0-9+/=_\-.~]+$`)
)

// looksReal says why a literal looks like a real credential ("" when it does not).
func looksReal(s string) string {
	if pemKeyRE.MatchString(s) {
		return "PEM private key"
	}
	if akiaRE.MatchString(s) {
		return "AWS access key id"
	}
	if m := urlPasswordRE.FindStringSubmatch(s); m != nil && !placeholderRE.MatchString(m[1]) && !strings.HasPrefix(m[1], "$") {
		return "password in a URL"
	}
	if placeholderRE.MatchString(s) {
		return ""
	}
	t := strings.TrimSpace(s)
	if len(t) >= 20 && tokenRE.MatchString(t) && !strings.HasPrefix(t, "/") {
		e := entropy(t)
		hex := regexp.MustCompile(`^[0-9a-fA-F]+$`).MatchString(t)
		if (hex && len(t) >= 32 && e >= 3.0) || (!hex && e >= 4.0) {
			return fmt.Sprintf("high-entropy string, %.1f bits/char", e)
		}
	}
	return ""
}

func entropy(s string) float64 {
	n := map[rune]float64{}
	for _, r := range s {
		n[r]++
	}
	var h float64
	l := float64(len([]rune(s)))
	for _, c := range n {
		f := c / l
		h -= f * math.Log2(f)
	}
	return h
}

func ruleSecrets(c *RuleContext) Problems {
	var p Problems
	for _, o := range c.Objects {
		switch t := o.Typed.(type) {
		case *corev1.Secret:
			keys := make([]string, 0, len(t.Data)+len(t.StringData))
			vals := map[string]string{}
			for k, v := range t.Data {
				keys = append(keys, k)
				vals[k] = string(v)
			}
			for k, v := range t.StringData {
				keys = append(keys, k)
				vals[k] = v
			}
			sort.Strings(keys)
			for _, k := range keys {
				if why := looksReal(vals[k]); why != "" {
					p.add(o, "key %q looks like a real secret (%s): commit placeholders only (*.example) and let kind-setup.sh generate real values", k, why)
				}
			}
		case *corev1.ConfigMap:
			for k, v := range t.Data {
				if why := looksReal(v); why == "PEM private key" || why == "AWS access key id" || why == "password in a URL" {
					p.add(o, "key %q holds a credential (%s) in a ConfigMap", k, why)
				}
			}
		}
	}
	return p
}

// ---------------------------------------------------------------- eventing

func refExists(c *RuleContext, ref *duckv1.KReference, ns string) (string, bool) {
	if ref == nil {
		return "", true
	}
	refNS := ref.Namespace
	if refNS == "" {
		refNS = ns
	}
	group := "core"
	if i := strings.Index(ref.APIVersion, "/"); i > 0 {
		group = ref.APIVersion[:i]
	}
	return fmt.Sprintf("%s %s/%s (%s)", ref.Kind, refNS, ref.Name, ref.APIVersion), c.existsIn(group, ref.Kind, refNS, ref.Name)
}

func ruleEventing(c *RuleContext) Problems {
	var p Problems
	for _, o := range c.Objects {
		switch t := o.Typed.(type) {
		case *eventingv1.Trigger:
			if !c.exists("Broker", t.Namespace, t.Spec.Broker) {
				p.add(o, "broker %q does not exist in namespace %s", t.Spec.Broker, t.Namespace)
			}
			if t.Spec.Subscriber.Ref == nil {
				p.add(o, "subscriber has no ref (a Knative Service of this render)")
			} else if what, ok := refExists(c, t.Spec.Subscriber.Ref, t.Namespace); !ok {
				p.add(o, "subscriber %s does not exist", what)
			}
			if t.Spec.Subscriber.Audience == nil || *t.Spec.Subscriber.Audience == "" {
				p.add(o, "subscriber.audience is empty: the receivers verify the OIDC sender token's audience")
			} else {
				checkAudience(c, &p, o, t.Spec.Subscriber.Ref, t.Namespace, *t.Spec.Subscriber.Audience, "subscriber")
			}
			if t.Spec.Delivery != nil && t.Spec.Delivery.DeadLetterSink != nil {
				if what, ok := refExists(c, t.Spec.Delivery.DeadLetterSink.Ref, t.Namespace); !ok {
					p.add(o, "deadLetterSink %s does not exist", what)
				}
			}
		case *eventingv1.Broker:
			if t.Spec.Delivery == nil {
				p.add(o, "no spec.delivery (retries, backoff, dead-letter sink)")
			} else if t.Spec.Delivery.DeadLetterSink == nil {
				p.add(o, "spec.delivery has no deadLetterSink")
			} else if what, ok := refExists(c, t.Spec.Delivery.DeadLetterSink.Ref, t.Namespace); !ok {
				p.add(o, "deadLetterSink %s does not exist", what)
			} else if aud := t.Spec.Delivery.DeadLetterSink.Audience; aud != nil && *aud != "" {
				checkAudience(c, &p, o, t.Spec.Delivery.DeadLetterSink.Ref, t.Namespace, *aud, "deadLetterSink")
			}
		case *sourcesv1.SinkBinding:
			s := t.Spec.Subject
			if s.Name == "" {
				p.add(o, "subject has no name (a selector would bind every matching workload)")
			} else if !c.exists(s.Kind, firstNonEmpty(s.Namespace, t.Namespace), s.Name) {
				p.add(o, "subject %s %s/%s does not exist", s.Kind, firstNonEmpty(s.Namespace, t.Namespace), s.Name)
			}
			if what, ok := refExists(c, t.Spec.Sink.Ref, t.Namespace); !ok {
				p.add(o, "sink %s does not exist", what)
			}
		}
	}
	return p
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ---------------------------------------------------------------- references

// secretsFromCertificates: cert-manager writes each Certificate's Secret.
func ruleReferences(c *RuleContext) Problems {
	var p Problems
	listed := append([]string{}, c.External...)
	for _, o := range c.Objects {
		if cert, ok := o.Typed.(*certmanagerv1.Certificate); ok {
			c.External = append(c.External, "Secret "+cert.Namespace+"/"+cert.Spec.SecretName)
		}
	}
	used := map[string]bool{}
	need := func(o *Object, kind, name, what string) {
		if name == "" {
			return
		}
		used[kind+" "+o.Namespace+"/"+name] = true
		if !c.exists(kind, o.Namespace, name) {
			p.add(o, "%s refers to %s %s/%s, which is neither in the render nor created by kind-setup.sh", what, kind, o.Namespace, name)
		}
	}
	for _, o := range c.Objects {
		switch t := o.Typed.(type) {
		case *monitoringv1.PodMonitor:
			for _, ep := range t.Spec.PodMetricsEndpoints {
				if ep.Authorization != nil && ep.Authorization.Credentials != nil {
					need(o, "Secret", ep.Authorization.Credentials.Name, "authorization")
				}
			}
		case *monitoringv1.ServiceMonitor:
			for _, ep := range t.Spec.Endpoints {
				if ep.Authorization != nil && ep.Authorization.Credentials != nil {
					need(o, "Secret", ep.Authorization.Credentials.Name, "authorization")
				}
			}
		}
		ps := podSpecOf(o)
		if ps == nil {
			continue
		}
		if ps.ServiceAccountName != "" && ps.ServiceAccountName != "default" {
			need(o, "ServiceAccount", ps.ServiceAccountName, "serviceAccountName")
		}
		for _, v := range ps.Volumes {
			if v.Secret != nil {
				need(o, "Secret", v.Secret.SecretName, "volume "+v.Name)
			}
			if v.ConfigMap != nil {
				need(o, "ConfigMap", v.ConfigMap.Name, "volume "+v.Name)
			}
			if v.PersistentVolumeClaim != nil {
				need(o, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName, "volume "+v.Name)
			}
			if v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.Secret != nil {
						need(o, "Secret", s.Secret.Name, "volume "+v.Name)
					}
					if s.ConfigMap != nil {
						need(o, "ConfigMap", s.ConfigMap.Name, "volume "+v.Name)
					}
				}
			}
		}
		cts := append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...)
		for _, ct := range cts {
			for _, e := range ct.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Optional == nil || !*r.Optional) {
					need(o, "Secret", r.Name, fmt.Sprintf("container %q env %s", ct.Name, e.Name))
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && (r.Optional == nil || !*r.Optional) {
					need(o, "ConfigMap", r.Name, fmt.Sprintf("container %q env %s", ct.Name, e.Name))
				}
			}
			for _, ef := range ct.EnvFrom {
				if ef.SecretRef != nil {
					need(o, "Secret", ef.SecretRef.Name, fmt.Sprintf("container %q envFrom", ct.Name))
				}
				if ef.ConfigMapRef != nil {
					need(o, "ConfigMap", ef.ConfigMapRef.Name, fmt.Sprintf("container %q envFrom", ct.Name))
				}
			}
		}
	}
	// every Secret/ConfigMap kind-setup.sh creates is used by something in the render
	for _, e := range listed {
		if (strings.HasPrefix(e, "Secret ") || strings.HasPrefix(e, "ConfigMap ")) && !used[e] {
			p = append(p, fmt.Sprintf("external %s: created by kind-setup.sh but used by nothing in the render", e))
		}
	}
	return p
}

// ---------------------------------------------------------------- routes

func ruleRoutes(c *RuleContext) Problems {
	var p Problems
	targets := map[string]bool{}
	for _, r := range c.Routes.Routes {
		targets[r.Service] = true
	}
	for svc := range targets {
		if svc == "none" || svc == "minio" {
			continue
		}
		if !c.existsIn("serving.knative.dev", "Service", routesNamespace, svc) {
			p = append(p, fmt.Sprintf("routes.yaml: service %q is not a Knative Service in namespace %s", svc, routesNamespace))
		}
	}
	for _, o := range c.Objects {
		ks, ok := o.Typed.(*servingv1.Service)
		if !ok || ks.Spec.Template.Labels["app.kubernetes.io/component"] != "function" {
			continue
		}
		if ks.Namespace == routesNamespace && !targets[ks.Name] && ks.Labels["arca.dev/external-routes"] != "none" {
			p.add(o, "function is not routed by knative/base/ingress/routes.yaml (label arca.dev/external-routes: none if it has no external route)")
		}
	}
	return p
}

// checkAudience: the Knative Service an event goes to must expect exactly that audience
// (its ARCA_EVENT_AUDIENCE), or it refuses every event with 401.
func checkAudience(c *RuleContext, p *Problems, o *Object, ref *duckv1.KReference, ns, audience, what string) {
	if ref == nil || ref.Kind != "Service" || !strings.HasPrefix(ref.APIVersion, "serving.knative.dev/") {
		return
	}
	for _, x := range c.Objects {
		ks, ok := x.Typed.(*servingv1.Service)
		if !ok || ks.Name != ref.Name || ks.Namespace != firstNonEmpty(ref.Namespace, ns) {
			continue
		}
		found := false
		for _, ct := range ks.Spec.Template.Spec.Containers {
			for _, e := range ct.Env {
				if e.Name != "ARCA_EVENT_AUDIENCE" {
					continue
				}
				found = true
				if e.Value != audience {
					p.add(o, "%s.audience %q differs from %s's ARCA_EVENT_AUDIENCE %q: every event would be refused", what, audience, ks.Name, e.Value)
				}
			}
		}
		if !found {
			p.add(o, "%s %s has no ARCA_EVENT_AUDIENCE: it cannot verify the sender token", what, ks.Name)
		}
	}
}

// ---------------------------------------------------------------- database connections

// defaultPoolSize is a process's PostgreSQL pool without ARCA_DB_POOL_SIZE (core/config.rs).
const defaultPoolSize = 16

// connectionHeadroom: superuser_reserved_connections (3) and room for psql and an exporter.
const connectionHeadroom = 10

// ruleConnectionBudget: every pod labelled arca.dev/db=client holds up to ARCA_DB_POOL_SIZE
// connections. Knative Services count max-scale pods, twice (during a rollout the old and
// the new revision both run); Jobs count one pod. The sum plus the headroom must fit in the
// PostgreSQL StatefulSet's max_connections (its -c max_connections=N, else 100).
func ruleConnectionBudget(c *RuleContext) Problems {
	var p Problems
	var server *Object
	maxConn := 100
	for _, o := range c.Objects {
		if ss, ok := o.Typed.(*appsv1.StatefulSet); ok && ss.Name == "postgres" {
			server = o
			for _, ct := range ss.Spec.Template.Spec.Containers {
				for _, a := range append(append([]string{}, ct.Command...), ct.Args...) {
					if v, ok := strings.CutPrefix(a, "max_connections="); ok {
						if n, err := strconv.Atoi(v); err == nil {
							maxConn = n
						}
					}
				}
			}
		}
	}
	if server == nil {
		return nil
	}
	total := connectionHeadroom
	var parts []string
	for _, o := range c.Objects {
		ps := podSpecOf(o)
		if ps == nil {
			continue
		}
		var labels, annotations map[string]string
		pods := 1
		switch t := o.Typed.(type) {
		case *servingv1.Service:
			labels, annotations = t.Spec.Template.Labels, t.Spec.Template.Annotations
			n, err := strconv.Atoi(annotations["autoscaling.knative.dev/max-scale"])
			if err != nil || n <= 0 {
				p.add(o, "a database client needs a finite autoscaling.knative.dev/max-scale (the connection budget counts it)")
				continue
			}
			pods = 2 * n
		case *batchv1.Job:
			labels = t.Spec.Template.Labels
		default:
			continue
		}
		if labels["arca.dev/db"] != "client" {
			continue
		}
		pool := defaultPoolSize
		for _, ct := range ps.Containers {
			for _, e := range ct.Env {
				if e.Name == "ARCA_DB_POOL_SIZE" {
					if n, err := strconv.Atoi(e.Value); err == nil {
						pool = n
					}
				}
			}
		}
		total += pods * pool
		parts = append(parts, fmt.Sprintf("%s %dx%d", o.Name, pods, pool))
	}
	if total > maxConn {
		p.add(server, "the database clients may open %d connections (%s, +%d spare) but max_connections is %d: lower ARCA_DB_POOL_SIZE or max-scale, or raise max_connections",
			total, strings.Join(parts, ", "), connectionHeadroom, maxConn)
	}
	return p
}

// ---------------------------------------------------------------- rollout within the quota

// queueProxy is what Knative's queue-proxy sidecar adds to every revision pod: kind-setup.sh
// sets config-deployment's queue-sidecar-{cpu,memory}-{request,limit} to these.
var queueProxy = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("25m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
	Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
}

// ruleRolloutQuota: a rollout starts a new revision of every Knative Service beside the old
// one (kind-setup.sh applies them together), so a namespace's ResourceQuota must admit every
// Service twice at its resting scale (max of min-scale and initial-scale, at least 1), each
// pod with its containers and the queue-proxy.
func ruleRolloutQuota(c *RuleContext) Problems {
	var p Problems
	for _, q := range c.Objects {
		quota, ok := q.Typed.(*corev1.ResourceQuota)
		if !ok {
			continue
		}
		need := corev1.ResourceList{}
		add := func(name corev1.ResourceName, v resource.Quantity, times int) {
			v.Mul(int64(times))
			cur := need[name]
			cur.Add(v)
			need[name] = cur
		}
		pods := 0
		for _, o := range c.Objects {
			svc, ok := o.Typed.(*servingv1.Service)
			if !ok || o.Namespace != q.Namespace {
				continue
			}
			n := 1
			for _, key := range []string{"autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/initial-scale"} {
				if v, err := strconv.Atoi(svc.Spec.Template.Annotations[key]); err == nil && v > n {
					n = v
				}
			}
			n *= 2
			pods += n
			containers := append([]corev1.ResourceRequirements{queueProxy}, func() []corev1.ResourceRequirements {
				var r []corev1.ResourceRequirements
				for _, ct := range svc.Spec.Template.Spec.Containers {
					r = append(r, ct.Resources)
				}
				return r
			}()...)
			for _, r := range containers {
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if v, ok := r.Requests[res]; ok {
						add("requests."+res, v, n)
					}
					if v, ok := r.Limits[res]; ok {
						add("limits."+res, v, n)
					}
				}
			}
		}
		if pods == 0 {
			continue
		}
		add(corev1.ResourcePods, *resource.NewQuantity(int64(pods), resource.DecimalSI), 1)
		for name, needed := range need {
			if hard, ok := quota.Spec.Hard[name]; ok && hard.Cmp(needed) < 0 {
				p.add(q, "%s %s cannot hold a rollout (every Knative Service twice at its resting scale, with queue-proxy, needs %s)", name, hard.String(), needed.String())
			}
		}
	}
	return p
}
