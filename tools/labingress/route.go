package main

// Routing table: the translation of KIngress objects into per-listener virtual hosts, following what
// net-kourier's generator/ingress_translator.go emits for Envoy:
//   - one virtual host per rule; its domains are rule.hosts, each also with ":*" so the port of the
//     Host header is ignored;
//   - ExternalIP rules go to the external listener (and the HTTPS one), every rule (ExternalIP and
//     ClusterLocal) goes to the internal listener;
//   - per path a route with a prefix match (empty path = "/"), exact header matchers
//     (HeaderMatch.Exact; an empty Exact is a presence match, as an Envoy HeaderMatcher without a
//     specifier), request_headers_to_add with OVERWRITE_IF_EXISTS_OR_ADD (appendHeaders),
//     host_rewrite_literal (rewriteHost) and weighted clusters (splits, weight = percent);
//   - before translating, Kourier calls knative.dev/networking/pkg/ingress.InsertProbe, which adds a
//     copy of every path matching "K-Network-Hash: override" that sets K-Network-Hash to the hash
//     of the Ingress (the conformance test "headers/probe" checks that hash); we do the same.
//
// Route order: Envoy takes the first matching route of a virtual host, and Kourier emits the paths in
// spec order. Knative always orders them specific-first (probe and tag-header paths before the plain
// ones, "/" default last), so instead of relying on that we sort: routes with header conditions first,
// then longer prefixes first, spec order breaking ties. For the Ingresses Knative generates this picks
// the same route Envoy would.

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"knative.dev/networking/pkg/apis/networking/v1alpha1"
	"knative.dev/networking/pkg/ingress"
)

// HeaderCond is one exact-match header condition of a route.
type HeaderCond struct {
	Name  string // canonical header name
	Exact string // "" means: the header must be present
}

// Split is one weighted backend of a route.
type Split struct {
	Namespace     string
	Name          string
	Port          intstr.IntOrString
	Percent       int
	AppendHeaders map[string]string
}

// Route is one path of one rule.
type Route struct {
	Ingress       string // namespace/name, for logs
	Prefix        string
	Headers       []HeaderCond
	RewriteHost   string
	AppendHeaders map[string]string
	Splits        []Split
	order         int
}

// Table is an immutable snapshot of all routes; the proxy swaps whole tables atomically.
type Table struct {
	external map[string][]*Route // lower-case host -> routes, sorted by precedence
	internal map[string][]*Route
	// Generations holds, for every Ingress translated into this table, the generation translated.
	Generations map[string]int64
	// Failed holds the Ingresses that could not be translated, with the reason.
	Failed map[string]error
}

// Listener kinds.
const (
	External = "external"
	Internal = "internal"
)

// BuildTable translates the given Ingresses (already filtered by class). When two Ingresses claim the
// same host on a listener, the first in namespace/name order keeps it (Envoy would reject such a
// route configuration).
func BuildTable(ings []*v1alpha1.Ingress) *Table {
	t := &Table{
		external:    map[string][]*Route{},
		internal:    map[string][]*Route{},
		Generations: map[string]int64{},
		Failed:      map[string]error{},
	}
	sorted := slices.Clone(ings)
	slices.SortFunc(sorted, func(a, b *v1alpha1.Ingress) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, ing := range sorted {
		key := ing.Namespace + "/" + ing.Name
		ext, in, err := translate(ing)
		if err != nil {
			t.Failed[key] = err
			continue
		}
		claim(t.external, ext, key)
		claim(t.internal, in, key)
		t.Generations[key] = ing.Generation
	}
	for _, hosts := range []map[string][]*Route{t.external, t.internal} {
		for _, routes := range hosts {
			slices.SortStableFunc(routes, func(a, b *Route) int {
				return cmp.Or(
					cmp.Compare(len(b.Headers), len(a.Headers)),
					cmp.Compare(len(b.Prefix), len(a.Prefix)),
					cmp.Compare(a.order, b.order),
				)
			})
		}
	}
	return t
}

// claim adds an Ingress' hosts to a listener map unless another Ingress holds them already.
func claim(dst, src map[string][]*Route, key string) {
	for host, routes := range src {
		if prev, ok := dst[host]; ok && len(prev) > 0 && prev[0].Ingress != key {
			continue
		}
		dst[host] = append(dst[host], routes...)
	}
}

// translate returns the external and internal host maps of one Ingress.
func translate(orig *v1alpha1.Ingress) (ext, in map[string][]*Route, err error) {
	ing := orig.DeepCopy()
	// Kourier: "Adds a header with the ingress Hash" (generator.UpdateInfoForIngress).
	if _, err := ingress.InsertProbe(ing); err != nil {
		return nil, nil, err
	}
	key := ing.Namespace + "/" + ing.Name
	ext, in = map[string][]*Route{}, map[string][]*Route{}
	order := 0
	for ri, rule := range ing.Spec.Rules {
		if len(rule.Hosts) == 0 {
			return nil, nil, fmt.Errorf("rules[%d] has no hosts", ri)
		}
		var routes []*Route
		for pi, p := range rule.HTTP.Paths {
			r, err := translatePath(key, p)
			if err != nil {
				return nil, nil, fmt.Errorf("rules[%d].paths[%d]: %w", ri, pi, err)
			}
			r.order = order
			order++
			routes = append(routes, r)
		}
		visibility := rule.Visibility
		if visibility == "" { // the Ingress default (IngressRule.SetDefaults)
			visibility = v1alpha1.IngressVisibilityExternalIP
		}
		for _, h := range rule.Hosts {
			h = strings.ToLower(h)
			in[h] = append(in[h], routes...)
			if visibility == v1alpha1.IngressVisibilityExternalIP {
				ext[h] = append(ext[h], routes...)
			}
		}
	}
	return ext, in, nil
}

func translatePath(key string, p v1alpha1.HTTPIngressPath) (*Route, error) {
	if len(p.Splits) == 0 {
		return nil, fmt.Errorf("no splits")
	}
	r := &Route{
		Ingress:       key,
		Prefix:        cmp.Or(p.Path, "/"),
		RewriteHost:   p.RewriteHost,
		AppendHeaders: p.AppendHeaders,
	}
	for name, m := range p.Headers {
		r.Headers = append(r.Headers, HeaderCond{Name: http.CanonicalHeaderKey(name), Exact: m.Exact})
	}
	slices.SortFunc(r.Headers, func(a, b HeaderCond) int { return cmp.Compare(a.Name, b.Name) })
	for _, s := range p.Splits {
		if s.ServiceName == "" || s.ServiceNamespace == "" {
			return nil, fmt.Errorf("split without serviceName/serviceNamespace")
		}
		r.Splits = append(r.Splits, Split{
			Namespace:     s.ServiceNamespace,
			Name:          s.ServiceName,
			Port:          s.ServicePort,
			Percent:       s.Percent,
			AppendHeaders: s.AppendHeaders,
		})
	}
	// HTTPIngressPath.SetDefaults: a single split without percent takes all the traffic.
	if len(r.Splits) == 1 && r.Splits[0].Percent == 0 {
		r.Splits[0].Percent = 100
	}
	return r, nil
}

// Lookup returns the first route of the listener matching host (port ignored), path and headers.
func (t *Table) Lookup(listener, host, path string, h http.Header) *Route {
	hosts := t.internal
	if listener == External {
		hosts = t.external
	}
	for _, r := range hosts[hostOnly(host)] {
		if strings.HasPrefix(path, r.Prefix) && r.headersMatch(h) {
			return r
		}
	}
	return nil
}

// Len returns the number of routes an Ingress has on the internal listener (which has all of them).
func (t *Table) Len(key string) int {
	n := 0
	for _, routes := range t.internal {
		for _, r := range routes {
			if r.Ingress == key {
				n++
			}
		}
	}
	return n
}

// headersMatch: Envoy joins repeated headers with "," before matching.
func (r *Route) headersMatch(h http.Header) bool {
	for _, c := range r.Headers {
		v, ok := h[c.Name]
		if !ok {
			return false
		}
		if c.Exact != "" && strings.Join(v, ",") != c.Exact {
			return false
		}
	}
	return true
}

// Pick chooses a split at random, weighted by percent (Envoy weighted_clusters). With no weights at
// all, the first split is used.
func (r *Route) Pick(rnd func(n int) int) *Split {
	total := 0
	for _, s := range r.Splits {
		total += max(s.Percent, 0)
	}
	if total == 0 {
		return &r.Splits[0]
	}
	n := rnd(total)
	for i := range r.Splits {
		n -= max(r.Splits[i].Percent, 0)
		if n < 0 {
			return &r.Splits[i]
		}
	}
	return &r.Splits[len(r.Splits)-1]
}

// randN is the default source for Pick.
func randN(n int) int { return rand.IntN(n) }

// hostOnly strips the port from a Host header value and lower-cases it.
func hostOnly(host string) string {
	if strings.HasPrefix(host, "[") { // [v6]:port
		if i := strings.Index(host, "]"); i > 0 {
			return strings.ToLower(host[:i+1])
		}
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		host = host[:i]
	}
	return strings.ToLower(host)
}
