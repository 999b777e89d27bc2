package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"knative.dev/networking/pkg/apis/networking/v1alpha1"
)

var rfc1918 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
}

const absent = "<absent>"

// Examples 1-6 are the ones of Envoy's headers.rst (x-forwarded-for section), with the XFF
// delimiter of Envoy's current Utility::appendXff (","; the documentation's examples predate it and
// show ", "). Examples 5 and 6 assume Envoy's former default internal addresses (RFC1918); Kourier
// configures none, which the "kourier default" cases show.
func TestMutateHeadersEnvoyExamples(t *testing.T) {
	const xff3 = "203.0.113.128, 203.0.113.10, 203.0.113.1"
	cases := []struct {
		name        string
		cfg         HeaderConfig
		peer        string
		tls         bool
		in          map[string]string
		wantTrusted string
		want        map[string]string
	}{{
		name: "example 1: edge, use_remote_address, 0 trusted hops",
		cfg:  HeaderConfig{UseRemoteAddress: true},
		peer: "192.0.2.5",
		in:   map[string]string{"X-Forwarded-For": xff3, "X-Envoy-Internal": "true", "X-Forwarded-Proto": "https"},
		// XFF is ignored for the trusted address; X-Forwarded-Proto of an untrusted peer is replaced.
		wantTrusted: "192.0.2.5",
		want: map[string]string{"X-Forwarded-For": xff3 + ",192.0.2.5", "X-Envoy-External-Address": "192.0.2.5",
			"X-Envoy-Internal": absent, "X-Forwarded-Proto": "http"},
	}, {
		name:        "example 2: internal proxy behind example 1",
		cfg:         HeaderConfig{},
		peer:        "10.11.12.13",
		in:          map[string]string{"X-Forwarded-For": xff3 + ", 192.0.2.5", "X-Envoy-External-Address": "192.0.2.5", "X-Envoy-Internal": "true"},
		wantTrusted: "192.0.2.5",
		want: map[string]string{"X-Forwarded-For": xff3 + ", 192.0.2.5", "X-Envoy-External-Address": "192.0.2.5",
			"X-Envoy-Internal": absent},
	}, {
		name:        "example 3: edge with two trusted proxies in front",
		cfg:         HeaderConfig{UseRemoteAddress: true, TrustedHops: 2},
		peer:        "192.0.2.5",
		in:          map[string]string{"X-Forwarded-For": xff3},
		wantTrusted: "203.0.113.10",
		want: map[string]string{"X-Forwarded-For": xff3 + ",192.0.2.5", "X-Envoy-External-Address": "203.0.113.10",
			"X-Envoy-Internal": absent},
	}, {
		name:        "example 4: internal proxy behind example 3",
		cfg:         HeaderConfig{TrustedHops: 2},
		peer:        "10.11.12.13",
		in:          map[string]string{"X-Forwarded-For": xff3 + ", 192.0.2.5"},
		wantTrusted: "203.0.113.10",
		want: map[string]string{"X-Forwarded-For": xff3 + ", 192.0.2.5", "X-Envoy-External-Address": absent,
			"X-Envoy-Internal": absent},
	}, {
		name:        "example 5: internal client, no XFF (not internal: no XFF)",
		cfg:         HeaderConfig{Internal: rfc1918},
		peer:        "10.20.30.40",
		wantTrusted: "10.20.30.40",
		want:        map[string]string{"X-Forwarded-For": absent, "X-Envoy-Internal": absent, "X-Envoy-External-Address": absent},
	}, {
		name:        "example 6: internal client via another Envoy",
		cfg:         HeaderConfig{Internal: rfc1918},
		peer:        "10.20.30.50",
		in:          map[string]string{"X-Forwarded-For": "10.20.30.40", "X-Envoy-Retry-On": "5xx"},
		wantTrusted: "10.20.30.40",
		want:        map[string]string{"X-Forwarded-For": "10.20.30.40", "X-Envoy-Internal": "true", "X-Envoy-Retry-On": "5xx"},
	}, {
		name:        "kourier default: example 6 is not internal, internal-only headers go",
		cfg:         HeaderConfig{},
		peer:        "10.20.30.50",
		in:          map[string]string{"X-Forwarded-For": "10.20.30.40", "X-Envoy-Retry-On": "5xx"},
		wantTrusted: "10.20.30.40",
		want:        map[string]string{"X-Envoy-Internal": absent, "X-Envoy-Retry-On": absent},
	}, {
		name:        "use_remote_address, 1 trusted hop (a load balancer in front)",
		cfg:         HeaderConfig{UseRemoteAddress: true, TrustedHops: 1},
		peer:        "10.0.0.7",
		in:          map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9", "X-Forwarded-Proto": "https"},
		wantTrusted: "198.51.100.9",
		want: map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9,10.0.0.7",
			"X-Envoy-External-Address": "198.51.100.9", "X-Forwarded-Proto": "https"},
	}, {
		name:        "use_remote_address, 1 trusted hop, no XFF: falls back to the peer",
		cfg:         HeaderConfig{UseRemoteAddress: true, TrustedHops: 1},
		peer:        "198.51.100.9",
		wantTrusted: "198.51.100.9",
		want: map[string]string{"X-Forwarded-For": "198.51.100.9", "X-Envoy-External-Address": "198.51.100.9",
			"X-Forwarded-Proto": "http"},
	}, {
		name:        "use_remote_address, TLS listener",
		cfg:         HeaderConfig{UseRemoteAddress: true},
		peer:        "198.51.100.9",
		tls:         true,
		in:          map[string]string{"X-Forwarded-Proto": "http"},
		wantTrusted: "198.51.100.9",
		want:        map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"},
	}, {
		name:        "no use_remote_address, 0 hops: rightmost XFF, nothing appended, XFP kept",
		cfg:         HeaderConfig{},
		peer:        "10.0.0.7",
		in:          map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9", "X-Forwarded-Proto": "https"},
		wantTrusted: "198.51.100.9",
		want: map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9", "X-Forwarded-Proto": "https",
			"X-Envoy-External-Address": absent},
	}, {
		name:        "no use_remote_address, 1 hop: 2nd from the right",
		cfg:         HeaderConfig{TrustedHops: 1},
		peer:        "10.0.0.7",
		in:          map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9"},
		wantTrusted: "6.6.6.6",
		want:        map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.9", "X-Forwarded-Proto": "http"},
	}, {
		name:        "no use_remote_address, 1 hop, too short XFF: the peer",
		cfg:         HeaderConfig{TrustedHops: 1},
		peer:        "10.0.0.7",
		in:          map[string]string{"X-Forwarded-For": "198.51.100.9"},
		wantTrusted: "10.0.0.7",
		want:        map[string]string{"X-Forwarded-For": "198.51.100.9"},
	}, {
		name:        "no use_remote_address, no XFF: XFF stays absent, request id kept",
		cfg:         HeaderConfig{},
		peer:        "10.0.0.7",
		in:          map[string]string{"X-Request-Id": "keep-me", "X-Forwarded-Client-Cert": "By=x"},
		wantTrusted: "10.0.0.7",
		want:        map[string]string{"X-Forwarded-For": absent, "X-Request-Id": "keep-me", "X-Forwarded-Client-Cert": absent},
	}, {
		name:        "loopback peer: Envoy appends its own address",
		cfg:         HeaderConfig{UseRemoteAddress: true},
		peer:        "127.0.0.1",
		wantTrusted: "127.0.0.1",
		want:        map[string]string{"X-Forwarded-For": "10.9.8.7"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.in {
				h.Set(k, v)
			}
			got := c.cfg.MutateHeaders(h, netip.MustParseAddr(c.peer), netip.MustParseAddr("10.9.8.7"), c.tls,
				func() string { return "new-id" })
			if got.String() != c.wantTrusted {
				t.Errorf("trusted client address = %s, want %s", got, c.wantTrusted)
			}
			for k, want := range c.want {
				v, ok := h[k]
				switch {
				case want == absent && ok:
					t.Errorf("%s = %q, want absent", k, v)
				case want != absent && (!ok || strings.Join(v, ",") != want):
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			if h.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
	// Edge requests always get a fresh request id; others keep theirs.
	h := http.Header{"X-Request-Id": {"client-chosen"}}
	(&HeaderConfig{UseRemoteAddress: true}).MutateHeaders(h, netip.MustParseAddr("198.51.100.9"), netip.Addr{}, false, func() string { return "new-id" })
	if h.Get("X-Request-Id") != "new-id" {
		t.Errorf("edge request id = %q", h.Get("X-Request-Id"))
	}
	if id := newRequestID(); len(id) != 36 || id[14] != '4' {
		t.Errorf("request id %q is not a v4 UUID", id)
	}
}

// echo is an upstream that reports what it received.
type echoed struct {
	Host   string
	URI    string
	Header http.Header
}

func newTestProxy(t *testing.T, upstream string, ings ...*v1alpha1.Ingress) *Proxy {
	t.Helper()
	p := NewProxy(slog.New(slog.NewTextHandler(io.Discard, nil)), "cluster.local", HeaderConfig{})
	p.upstream = func(*http.Request, *Split) (string, error) { return upstream, nil }
	p.local = netip.MustParseAddr("10.9.8.7")
	p.SetTable(BuildTable(ings))
	return p
}

func TestProxyRoutesAndHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Host: r.Host, URI: r.RequestURI, Header: r.Header})
	}))
	defer up.Close()
	upHost := strings.TrimPrefix(up.URL, "http://")

	rewrite := path("/mapped", nil, split("s", 0, nil))
	rewrite.RewriteHost = "app.ns.svc.cluster.local"
	pre := path("", nil, split("s", 0, map[string]string{"Which-Split": "s"}))
	pre.AppendHeaders = map[string]string{"Foo-Bar-Baz": "set-by-ingress"}
	ing := mkIngress("app", 1,
		rule(v1alpha1.IngressVisibilityExternalIP, []string{"app.example.com"}, rewrite, pre),
		rule(v1alpha1.IngressVisibilityClusterLocal, []string{"app.ns.svc.cluster.local"}, path("", nil, split("s", 0, nil))),
	)
	p := newTestProxy(t, upHost, ing)
	p.SetHeaderConfig(HeaderConfig{UseRemoteAddress: true})
	ext := httptest.NewServer(p.Handler(External))
	defer ext.Close()
	in := httptest.NewServer(p.Handler(Internal))
	defer in.Close()

	do := func(base, host, target string, hdr map[string]string) (int, echoed) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+target, nil)
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e echoed
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, e
	}

	code, e := do(ext.URL, "app.example.com:8080", "/x?token=secret", map[string]string{
		"Foo-Bar-Baz": "bogus", "Knative-Serving-Namespace": "ns", "X-Forwarded-Host": "orig.example.com"})
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if e.Host != "app.example.com:8080" || e.URI != "/x?token=secret" {
		t.Errorf("host/uri = %q %q", e.Host, e.URI)
	}
	for k, want := range map[string]string{
		"Foo-Bar-Baz":               "set-by-ingress", // appendHeaders overwrite (Kourier: OVERWRITE_IF_EXISTS_OR_ADD)
		"Which-Split":               "s",
		"Knative-Serving-Namespace": "ns",
		"X-Forwarded-Host":          "orig.example.com",
		"X-Forwarded-For":           "10.9.8.7", // loopback peer -> the proxy's own address
		"X-Forwarded-Proto":         "http",
		"X-Envoy-External-Address":  "127.0.0.1",
	} {
		if got := strings.Join(e.Header[k], ","); got != want {
			t.Errorf("upstream %s = %q, want %q", k, got, want)
		}
	}
	if e.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id upstream")
	}

	if _, e := do(ext.URL, "app.example.com", "/mapped/y", nil); e.Host != "app.ns.svc.cluster.local" {
		t.Errorf("rewriteHost: upstream Host %q", e.Host)
	}
	if code, _ := do(ext.URL, "app.ns.svc.cluster.local", "/", nil); code != http.StatusNotFound {
		t.Errorf("ClusterLocal host on the external listener: %d", code)
	}
	if code, _ := do(in.URL, "app.ns.svc.cluster.local", "/", nil); code != http.StatusOK {
		t.Errorf("ClusterLocal host on the internal listener: %d", code)
	}
	if code, _ := do(in.URL, "app.example.com", "/", nil); code != http.StatusOK {
		t.Errorf("ExternalIP host on the internal listener: %d", code)
	}
	if code, _ := do(ext.URL, "unknown.example.com", "/", nil); code != http.StatusNotFound {
		t.Errorf("unknown host: %d", code)
	}

	// An unreachable upstream is a 503, like Envoy.
	p.upstream = func(*http.Request, *Split) (string, error) { return "127.0.0.1:1", nil }
	if code, _ := do(ext.URL, "app.example.com", "/", nil); code != http.StatusServiceUnavailable {
		t.Errorf("dead upstream: %d", code)
	}
	if got := sanitizeErr(&url.Error{Op: "Get", URL: "http://h/p?token=secret", Err: errors.New("refused")}); got != "refused" {
		t.Errorf("sanitizeErr = %q", got)
	}
}

// A large body in both directions passes through without being buffered: the upstream sees the
// first MiB of the upload while the client is still blocked before writing the rest, and the client
// sees the first MiB of the download while the upstream is still blocked before writing the rest.
func TestStreamingIsNotBuffered(t *testing.T) {
	const chunk = 1 << 20
	const rest = 63 << 20
	upstreamGotFirst := make(chan struct{})
	clientGotFirst := make(chan struct{})
	wait := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(20 * time.Second):
			return false
		}
	}
	upstreamDone := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var upstreamErr error
		defer func() { upstreamDone <- upstreamErr }()
		if _, err := io.ReadFull(r.Body, make([]byte, chunk)); err != nil {
			upstreamErr = err
			return
		}
		close(upstreamGotFirst)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil || n != rest {
			upstreamErr = errors.Join(err, errors.New("upstream got a short body"))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte("d"), chunk))
		http.NewResponseController(w).Flush()
		if !wait(clientGotFirst) {
			upstreamErr = errors.New("client did not get the first MiB of the response: buffered")
			return
		}
		for range rest / chunk {
			if _, err := w.Write(bytes.Repeat([]byte("d"), chunk)); err != nil {
				upstreamErr = err
				return
			}
		}
	}))
	defer up.Close()

	ing := mkIngress("big", 1, rule(v1alpha1.IngressVisibilityExternalIP, []string{"big.example.com"}, path("", nil, split("s", 0, nil))))
	p := newTestProxy(t, strings.TrimPrefix(up.URL, "http://"), ing)
	front := httptest.NewServer(p.Handler(External))
	defer front.Close()

	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(bytes.Repeat([]byte("u"), chunk)); err != nil {
			pw.CloseWithError(err)
			return
		}
		if !wait(upstreamGotFirst) {
			pw.CloseWithError(errors.New("upstream did not get the first MiB of the upload: buffered"))
			return
		}
		for range rest / chunk {
			if _, err := pw.Write(bytes.Repeat([]byte("u"), chunk)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, front.URL+"/artifact", pr)
	req.Host = "big.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	upstreamResult := func() error {
		select {
		case err := <-upstreamDone:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("upstream handler did not finish")
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d (upstream: %v)", resp.StatusCode, upstreamResult())
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, chunk)); err != nil {
		t.Fatalf("first MiB of the response: %v (upstream: %v)", err, upstreamResult())
	}
	close(clientGotFirst)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != rest {
		t.Fatalf("downloaded %d more bytes (want %d): %v (upstream: %v)", n, rest, err, upstreamResult())
	}
	if err := upstreamResult(); err != nil {
		t.Fatal(err)
	}
}
