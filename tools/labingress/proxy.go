package main

// The data plane: request header handling as Envoy's HTTP connection manager does it with the
// settings Kourier gives it, and a streaming reverse proxy.
//
// References (Envoy documentation and source):
//   [hdr]  docs/root/configuration/http/http_conn_man/headers.rst, sections x-forwarded-for,
//          x-forwarded-proto, x-envoy-external-address, x-envoy-internal, x-request-id
//          (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers)
//   [cmu]  source/common/http/conn_manager_utility.cc, ConnectionManagerUtility::mutateRequestHeaders
//   [util] source/common/http/utility.cc, Utility::getLastAddressFromXFF and Utility::appendXff
//   [log]  changelogs/1.36.0.yaml: "Removed runtime guard
//          envoy.reloadable_features.explicit_internal_address_config and legacy code paths", i.e. an
//          HTTP connection manager without internal_address_config (Kourier sets none) considers no
//          address internal.
//
// Kourier sets use_remote_address and xff_num_trusted_hops of its HTTP connection managers from the
// config-kourier keys use-remote-address and trusted-hops-count (defaults false and 0).

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// HeaderConfig is the part of config-kourier that shapes request headers.
type HeaderConfig struct {
	UseRemoteAddress bool
	TrustedHops      uint32
	// Internal lists the addresses Envoy's internal_address_config would call internal. Kourier
	// configures none, so by default no request is internal [log].
	Internal []netip.Prefix
}

func (c *HeaderConfig) isInternal(a netip.Addr) bool {
	for _, p := range c.Internal {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Envoy's internal-only request headers, removed from every request that is not internal [cmu].
var envoyInternalOnly = []string{
	"X-Envoy-Retriable-Status-Codes", "X-Envoy-Retriable-Header-Names", "X-Envoy-Retry-On",
	"X-Envoy-Retry-Grpc-On", "X-Envoy-Max-Retries", "X-Envoy-Upstream-Alt-Stat-Name",
	"X-Envoy-Upstream-Rq-Timeout-Ms", "X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms",
	"X-Envoy-Upstream-Rq-Timeout-Alt-Response", "X-Envoy-Expected-Rq-Timeout-Ms",
	"X-Envoy-Force-Trace", "X-Envoy-Ip-Tags", "X-Envoy-Original-Url", "X-Envoy-Hedge-On-Per-Try-Timeout",
}

// Removed in addition from edge requests [cmu].
var envoyEdgeOnly = []string{
	"X-Envoy-Decorator-Operation", "X-Envoy-Downstream-Service-Cluster", "X-Envoy-Downstream-Service-Node",
}

// MutateHeaders applies Envoy's request header rules [cmu] to h, for a request that came over a
// connection from peer, received on a connection that is TLS or not. local is the proxy's own
// (non-loopback) address, which Envoy appends to XFF instead of a loopback peer. newID makes request
// ids. It returns the trusted client address.
func (c *HeaderConfig) MutateHeaders(h http.Header, peer, local netip.Addr, isTLS bool, newID func() string) netip.Addr {
	scheme := "http"
	if isTLS {
		scheme = "https"
	}
	h.Del("X-Envoy-Internal") // "Clean proxy headers" [cmu]
	// forward_client_cert_details is unset in Kourier, i.e. SANITIZE: XFCC is removed [cmu].
	h.Del("X-Forwarded-Client-Cert")

	xffValues, xffPresent := h["X-Forwarded-For"]
	xff := strings.Join(xffValues, ",")
	var final netip.Addr
	var single bool
	if c.UseRemoteAddress {
		single = !xffPresent
		// [hdr] "If use_remote_address is true and xff_num_trusted_hops is set to a value N that is
		// greater than zero, the trusted client address is the Nth address from the right end of
		// XFF. (If the XFF contains fewer than N addresses, Envoy falls back to using the immediate
		// downstream connection's source address as trusted client address.)"
		if c.TrustedHops > 0 {
			final, _ = lastAddressFromXFF(xff, xffPresent, c.TrustedHops-1)
		}
		if !final.IsValid() {
			final = peer
		}
		// [hdr] "Envoy will only append to XFF if the use_remote_address HTTP connection manager
		// option is set to true"; [util] appendXff joins with "," (no space); a loopback peer is
		// replaced by the proxy's local address [cmu].
		appended := peer
		if peer.IsLoopback() && local.IsValid() {
			appended = local
		}
		if xffPresent && xff != "" {
			xff += "," + appended.String()
		} else {
			xff = appended.String()
		}
		h.Set("X-Forwarded-For", xff)
		// [hdr] "Downstream x-forwarded-proto headers will only be trusted if xff_num_trusted_hops is
		// non-zero. If xff_num_trusted_hops is zero, downstream x-forwarded-proto headers ... will be
		// set to http or https based on if the downstream connection is TLS or not."
		if c.TrustedHops == 0 || h.Get("X-Forwarded-Proto") == "" {
			h.Set("X-Forwarded-Proto", scheme)
		}
	} else {
		// [hdr] "If use_remote_address is false and an XFF containing at least one IP address is
		// present in the request, the trusted client address is the last (rightmost) IP address in
		// XFF" / "... xff_num_trusted_hops is set to a value N that is greater than zero, the trusted
		// client address is the (N+1)th address from the right end of XFF." XFF is left as is.
		final, single = lastAddressFromXFF(xff, xffPresent, c.TrustedHops)
	}
	// [cmu] "If the x-forwarded-proto header is not set, set it here".
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", scheme)
	}
	// [cmu] internal iff a single XFF address (after appending) that is internal.
	internal := single && final.IsValid() && c.isInternal(final)
	if !final.IsValid() {
		final = peer
	}
	// [cmu] "Edge request is the request from external clients to front Envoy."
	edge := !internal && c.UseRemoteAddress
	if internal {
		h.Set("X-Envoy-Internal", "true")
	} else {
		if edge {
			for _, k := range envoyEdgeOnly {
				h.Del(k)
			}
		}
		for _, k := range envoyInternalOnly {
			h.Del(k)
		}
	}
	// [hdr] "Envoy ... setting x-envoy-external-address to the trusted client address if the request
	// is from an external client" (only when use_remote_address is true, i.e. edge requests [cmu]).
	if edge {
		h.Set("X-Envoy-External-Address", final.String())
	}
	// [hdr] "Envoy will generate an x-request-id header for all external origin requests (the header
	// is sanitized). It will also generate an x-request-id header for internal requests that do not
	// already have one." [cmu]: force-set on edge requests, otherwise only when absent.
	if edge || h.Get("X-Request-Id") == "" {
		h.Set("X-Request-Id", newID())
	}
	return final
}

// lastAddressFromXFF is Envoy's Utility::getLastAddressFromXFF [util]: skip numToSkip addresses from
// the right, parse the next one; single reports an XFF of exactly one address with nothing skipped.
func lastAddressFromXFF(xff string, present bool, numToSkip uint32) (addr netip.Addr, single bool) {
	if !present {
		return netip.Addr{}, false
	}
	s := xff
	for range numToSkip {
		i := strings.LastIndex(s, ",")
		if i < 0 {
			return netip.Addr{}, false
		}
		s = s[:i]
	}
	i := strings.LastIndex(s, ",")
	if i >= 0 && i+1 < len(s) {
		s = s[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), i < 0 && numToSkip == 0
}

// newRequestID returns a random (version 4) UUID, as Envoy's default request id extension does.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Proxy serves the listeners from the current table and header configuration.
type Proxy struct {
	table         atomic.Pointer[Table]
	headers       atomic.Pointer[HeaderConfig]
	transport     http.RoundTripper
	clusterDomain string
	local         netip.Addr // appended to XFF for loopback peers
	log           *slog.Logger
	accessLog     bool
	rnd           func(int) int
	newID         func() string
	// upstream resolves a split to host:port; default: cluster DNS (SRV for named ports).
	upstream func(r *http.Request, s *Split) (string, error)
}

// NewProxy returns a proxy with an empty table.
func NewProxy(log *slog.Logger, clusterDomain string, hc HeaderConfig) *Proxy {
	p := &Proxy{
		transport: &http.Transport{
			// Proxy is nil: never via an HTTP proxy from the environment.
			// Kourier's clusters have a 5s connect_timeout.
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1000,
			MaxIdleConnsPerHost:   100,
			IdleConnTimeout:       time.Hour,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // pass Accept-Encoding/Content-Encoding through untouched
			// No ResponseHeaderTimeout: Kourier's routes have no timeout (long downloads).
		},
		clusterDomain: clusterDomain,
		local:         localAddress(),
		log:           log,
		rnd:           randN,
		newID:         newRequestID,
	}
	p.upstream = p.dnsUpstream
	p.table.Store(BuildTable(nil))
	p.headers.Store(&hc)
	return p
}

// SetTable makes t live for all following requests.
func (p *Proxy) SetTable(t *Table) { p.table.Store(t) }

// SetHeaderConfig replaces the header configuration.
func (p *Proxy) SetHeaderConfig(c HeaderConfig) { p.headers.Store(&c) }

func (p *Proxy) dnsUpstream(r *http.Request, s *Split) (string, error) {
	host := s.Name + "." + s.Namespace + ".svc." + p.clusterDomain
	if s.Port.Type == intstr.Int {
		return net.JoinHostPort(host, strconv.Itoa(s.Port.IntValue())), nil
	}
	// A named port: Kubernetes DNS publishes _<port>._tcp.<service> SRV records.
	_, srvs, err := net.DefaultResolver.LookupSRV(r.Context(), s.Port.StrVal, "tcp", host)
	if err != nil || len(srvs) == 0 {
		return "", fmt.Errorf("resolve port %q of %s: %v", s.Port.StrVal, host, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(srvs[0].Port))), nil
}

// Handler returns the handler of one listener (External or Internal).
func (p *Proxy) Handler(listener string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		target := p.serve(rec, r, listener)
		if p.accessLog {
			// Path only: query strings carry tokens. No request headers are logged.
			p.log.Info("access", "listener", listener, "method", r.Method, "host", r.Host,
				"path", r.URL.EscapedPath(), "proto", r.Proto, "status", rec.status(),
				"bytes", rec.n, "upstream", target, "duration_ms", time.Since(start).Milliseconds())
		}
	})
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, listener string) string {
	route := p.table.Load().Lookup(listener, r.Host, r.URL.EscapedPath(), r.Header)
	if route == nil {
		w.WriteHeader(http.StatusNotFound) // Envoy: no route -> 404, empty body
		return ""
	}
	split := route.Pick(p.rnd)
	target, err := p.upstream(r, split)
	if err != nil {
		p.log.Warn("upstream resolution failed", "ingress", route.Ingress, "error", err)
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		return ""
	}
	hc := p.headers.Load()
	peer := addrOf(r.RemoteAddr)
	rp := &httputil.ReverseProxy{
		Transport:     p.transport,
		FlushInterval: -1, // stream: flush after every write, never buffer
		Rewrite: func(pr *httputil.ProxyRequest) {
			// ReverseProxy has removed hop-by-hop headers and Forwarded/X-Forwarded-* from
			// pr.Out; Envoy passes Forwarded and X-Forwarded-Host through, and computes
			// X-Forwarded-For/-Proto from the incoming values.
			for _, k := range []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-For", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			hc.MutateHeaders(pr.Out.Header, peer, p.local, r.TLS != nil, p.newID)
			// Envoy's default order: weighted-cluster headers, then route headers, each
			// overwriting ("most_specific_header_mutations_wins" is false).
			for _, hs := range []map[string]string{split.AppendHeaders, route.AppendHeaders} {
				for k, v := range hs {
					if strings.EqualFold(k, "Host") { // Envoy refuses to modify Host this way
						continue
					}
					pr.Out.Header.Set(k, v)
				}
			}
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			pr.Out.Host = pr.In.Host
			if route.RewriteHost != "" {
				pr.Out.Host = route.RewriteHost
			}
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			p.log.Warn("upstream request failed", "ingress", route.Ingress, "upstream", target,
				"method", req.Method, "path", req.URL.EscapedPath(), "error", sanitizeErr(err))
			// Envoy answers a failed upstream connection with 503.
			http.Error(w, "upstream connect error or disconnect/reset before headers", http.StatusServiceUnavailable)
		},
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	rp.ServeHTTP(w, r)
	return target
}

// sanitizeErr drops URLs (which carry query strings) from errors.
func sanitizeErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// addrOf parses the IP of a "host:port" remote address.
func addrOf(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// localAddress is Envoy's Network::Utility::getLocalAddress: the first non-loopback interface address.
func localAddress() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.Unmap().IsLoopback() && ip.Unmap().Is4() {
				return ip.Unmap()
			}
		}
	}
	return netip.Addr{}
}

// recorder captures status and size for the access log; Unwrap lets http.ResponseController (used by
// ReverseProxy to flush and to hijack for upgrades) reach the real writer.
type recorder struct {
	http.ResponseWriter
	code int
	n    int64
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
