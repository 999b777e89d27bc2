// Command labingress is a test stand-in for Kourier's data plane, lab only.
//
// Kourier (knative-extensions/net-kourier) programs an Envoy gateway from KIngress objects. Envoy
// cannot run on the lab machine, so this program does the job of both Kourier's controller and its
// Envoy gateway for a lab cluster: it watches ingresses.networking.internal.knative.dev of the Kourier
// class, serves them on Kourier's listeners with Kourier's routing and Envoy's documented request
// header behaviour, and reports status with Kourier's load balancer domains, so that the ExternalName
// Services Knative Serving creates for KServices point at the "kourier"/"kourier-internal" Services.
// It is not a production ingress: see the "Not implemented" list below.
//
// Listeners (as Kourier's gateway, pkg/config/config.go of net-kourier):
//
//	:8080  external, plain HTTP (and h2c), ExternalIP rules only         (Service kourier, port 80)
//	:8081  internal, plain HTTP (and h2c), ExternalIP and ClusterLocal   (Service kourier-internal, port 80)
//	:8443  external HTTPS with one certificate (a kubernetes.io/tls Secret named by flags or by
//	       config-kourier certs-secret-namespace/certs-secret-name), started once the Secret loads
//	:9090  admin: /ready answers 200 once the informers have synced and the first table is live
//
// Request headers follow Envoy's HTTP connection manager with Kourier's use-remote-address and
// trusted-hops-count (config-kourier, watched): see proxy.go for the rules and the Envoy references.
//
// Not implemented: per-Ingress spec.tls (SNI certificates), HTTPOption Redirected, retries and
// timeouts (Kourier configures none; there is no stream idle timeout either), h2c/gRPC to upstreams
// (upstream is always HTTP/1.1), external authorization, proxy protocol, tracing, access log format
// options. Websockets work through httputil.ReverseProxy's upgrade support.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/networking/pkg/client/clientset/versioned"
	netinformers "knative.dev/networking/pkg/client/informers/externalversions"
)

type options struct {
	kubeconfig      string
	class           string
	externalAddr    string
	internalAddr    string
	httpsAddr       string
	adminAddr       string
	configNamespace string
	configName      string
	defaults        kourierConfig
	internalCIDRs   string
	publicLB        string
	privateLB       string
	clusterDomain   string
	accessLog       bool
	resync          time.Duration
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("labingress", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty: in-cluster configuration")
	fs.StringVar(&o.class, "ingress-class", envOr("KOURIER_INGRESS_CLASS_NAME", "kourier.ingress.networking.knative.dev"), "networking.knative.dev/ingress.class to serve")
	fs.StringVar(&o.externalAddr, "external-addr", ":8080", "external listener (ExternalIP rules)")
	fs.StringVar(&o.internalAddr, "internal-addr", ":8081", "internal listener (all rules)")
	fs.StringVar(&o.httpsAddr, "https-addr", ":8443", "external HTTPS listener, started when a certificate is configured")
	fs.StringVar(&o.adminAddr, "admin-addr", ":9090", "admin listener (/ready)")
	fs.StringVar(&o.configNamespace, "config-namespace", "knative-serving", "namespace of the Kourier ConfigMap")
	fs.StringVar(&o.configName, "config-name", "config-kourier", "name of the Kourier ConfigMap")
	fs.BoolVar(&o.defaults.UseRemoteAddress, "use-remote-address", false, "default of config-kourier use-remote-address")
	hops := fs.Uint("trusted-hops-count", 0, "default of config-kourier trusted-hops-count")
	fs.StringVar(&o.defaults.CertNamespace, "tls-secret-namespace", os.Getenv("CERTS_SECRET_NAMESPACE"), "namespace of the external HTTPS certificate Secret (default of config-kourier certs-secret-namespace)")
	fs.StringVar(&o.defaults.CertName, "tls-secret-name", os.Getenv("CERTS_SECRET_NAME"), "name of the external HTTPS certificate Secret (default of config-kourier certs-secret-name)")
	fs.StringVar(&o.internalCIDRs, "internal-cidrs", "", "comma-separated CIDRs Envoy's internal_address_config would list (Kourier: none)")
	fs.StringVar(&o.publicLB, "public-lb-domain", "kourier.kourier-system.svc.cluster.local", "status.publicLoadBalancer domainInternal")
	fs.StringVar(&o.privateLB, "private-lb-domain", "kourier-internal.kourier-system.svc.cluster.local", "status.privateLoadBalancer domainInternal")
	fs.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain of upstream Services")
	fs.BoolVar(&o.accessLog, "access-log", true, "log one line per request (method, host, path without query, status)")
	fs.DurationVar(&o.resync, "resync", 10*time.Minute, "informer resync period")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *hops > 1<<32-1 {
		return o, fmt.Errorf("-trusted-hops-count %d is too large", *hops)
	}
	o.defaults.TrustedHops = uint32(*hops)
	if _, err := parseCIDRs(o.internalCIDRs); err != nil {
		return o, err
	}
	return o, nil
}

func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("-internal-cidrs: %w", err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// kourierConfig is the part of config-kourier this program uses.
type kourierConfig struct {
	UseRemoteAddress bool
	TrustedHops      uint32
	CertNamespace    string
	CertName         string
}

// parseKourierConfig reads config-kourier like net-kourier's NewKourierConfigFromMap (cm.AsBool:
// "true" in any case is true, anything else false; cm.AsUint32: a decimal uint32). Absent keys keep
// the given defaults (our flags).
func parseKourierConfig(data map[string]string, def kourierConfig) (kourierConfig, error) {
	c := def
	if v, ok := data["use-remote-address"]; ok {
		c.UseRemoteAddress = strings.EqualFold(strings.TrimSpace(v), "true")
	}
	if v, ok := data["trusted-hops-count"]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return def, fmt.Errorf("trusted-hops-count: %w", err)
		}
		c.TrustedHops = uint32(n)
	}
	if v, ok := data["certs-secret-namespace"]; ok {
		c.CertNamespace = strings.TrimSpace(v)
	}
	if v, ok := data["certs-secret-name"]; ok {
		c.CertName = strings.TrimSpace(v)
	}
	return c, nil
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("bad flags", "error", err)
		os.Exit(2)
	}
	if err := run(o, log); err != nil {
		log.Error("exiting", "error", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "arca-labingress"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	netClient, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	internalCIDRs, _ := parseCIDRs(o.internalCIDRs)

	proxy := NewProxy(log, o.clusterDomain, HeaderConfig{
		UseRemoteAddress: o.defaults.UseRemoteAddress, TrustedHops: o.defaults.TrustedHops, Internal: internalCIDRs})
	proxy.accessLog = o.accessLog

	// Informers: all Ingresses; the one ConfigMap.
	netFactory := netinformers.NewSharedInformerFactory(netClient, o.resync)
	ingInformer := netFactory.Networking().V1alpha1().Ingresses()
	cmFactory := informers.NewSharedInformerFactoryWithOptions(kube, o.resync,
		informers.WithNamespace(o.configNamespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.configName).String()
		}))
	cmInformer := cmFactory.Core().V1().ConfigMaps()

	ctrl := &Controller{
		Class: o.class, Client: netClient, Lister: ingInformer.Lister(), Proxy: proxy,
		PublicLB: o.publicLB, PrivateLB: o.privateLB, Log: log, Queue: NewQueue(),
	}
	if _, err := ingInformer.Informer().AddEventHandler(ctrl.Handler()); err != nil {
		return err
	}

	var ready atomic.Bool
	servers := &serverSet{log: log}
	certs := &certSource{kube: kube, log: log, resync: o.resync}
	certs.onCert = func() {
		servers.startOnce("https", o.httpsAddr, proxy.Handler(External), &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: certs.get,
		})
	}
	applyConfig := func(data map[string]string) {
		kc, err := parseKourierConfig(data, o.defaults)
		if err != nil {
			log.Error("ignoring invalid config-kourier", "error", err)
			return
		}
		proxy.SetHeaderConfig(HeaderConfig{UseRemoteAddress: kc.UseRemoteAddress, TrustedHops: kc.TrustedHops, Internal: internalCIDRs})
		certs.watch(ctx, kc.CertNamespace, kc.CertName)
		log.Info("configuration", "use_remote_address", kc.UseRemoteAddress, "trusted_hops_count", kc.TrustedHops,
			"tls_secret", kc.CertNamespace+"/"+kc.CertName)
	}
	if _, err := cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { applyConfig(obj.(*corev1.ConfigMap).Data) },
		UpdateFunc: func(_, obj any) { applyConfig(obj.(*corev1.ConfigMap).Data) },
		DeleteFunc: func(any) { applyConfig(nil) },
	}); err != nil {
		return err
	}

	// Admin first, so that the readiness probe gets an answer while informers sync.
	admin := http.NewServeMux()
	admin.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	servers.startOnce("admin", o.adminAddr, admin, nil)

	netFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	for typ, ok := range netFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	for typ, ok := range cmFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	if cm, err := cmInformer.Lister().ConfigMaps(o.configNamespace).Get(o.configName); err == nil {
		applyConfig(cm.Data)
	} else {
		applyConfig(nil)
	}
	if _, _, err := ctrl.Rebuild(); err != nil {
		return err
	}
	servers.startOnce("external", o.externalAddr, proxy.Handler(External), nil)
	servers.startOnce("internal", o.internalAddr, proxy.Handler(Internal), nil)
	go ctrl.Run(ctx)
	ready.Store(true)
	log.Info("ready", "ingress_class", o.class)

	<-ctx.Done()
	ready.Store(false)
	log.Info("shutting down")
	return servers.shutdown(15 * time.Second)
}

// serverSet starts named servers once and shuts them all down.
type serverSet struct {
	log     *slog.Logger
	mu      sync.Mutex
	started map[string]*http.Server
}

func (s *serverSet) startOnce(name, addr string, h http.Handler, tlsCfg *tls.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started == nil {
		s.started = map[string]*http.Server{}
	}
	if _, ok := s.started[name]; ok || addr == "" {
		return
	}
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       time.Hour, // Envoy's default idle_timeout
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if tlsCfg == nil {
		// Like Envoy's codec AUTO: HTTP/1.1 and HTTP/2 with prior knowledge on plain listeners.
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	s.started[name] = srv
	go func() {
		s.log.Info("listening", "listener", name, "addr", addr, "tls", tlsCfg != nil)
		var err error
		if tlsCfg != nil {
			err = srv.ListenAndServeTLS("", "")
		} else {
			err = srv.ListenAndServe()
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener failed", "listener", name, "error", err)
			os.Exit(1)
		}
	}()
}

func (s *serverSet) shutdown(grace time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var errs []error
	for _, srv := range s.started {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	if len(errs) > 0 && errors.Is(errors.Join(errs...), context.DeadlineExceeded) {
		return nil // long downloads were cut at the end of the grace period
	}
	return errors.Join(errs...)
}

// certSource holds the external HTTPS certificate, loaded from one Secret that is watched (the
// watch is replaced when config-kourier names another Secret).
type certSource struct {
	kube   kubernetes.Interface
	log    *slog.Logger
	resync time.Duration
	onCert func()

	mu     sync.Mutex
	ns     string
	name   string
	cancel context.CancelFunc
	cert   atomic.Pointer[tls.Certificate]
}

func (c *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cert.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no certificate loaded")
}

func (c *certSource) watch(ctx context.Context, ns, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ns == c.ns && name == c.name {
		return
	}
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	c.cert.Store(nil)
	c.ns, c.name = ns, name
	if ns == "" || name == "" {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	f := informers.NewSharedInformerFactoryWithOptions(c.kube, c.resync,
		informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	load := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		c.mu.Lock()
		current := c.ns == s.Namespace && c.name == s.Name && wctx.Err() == nil
		c.mu.Unlock()
		if !current {
			return
		}
		cert, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			c.log.Error("TLS secret unusable", "secret", s.Namespace+"/"+s.Name, "error", err)
			return
		}
		c.cert.Store(&cert)
		c.log.Info("TLS certificate loaded", "secret", s.Namespace+"/"+s.Name)
		if c.onCert != nil {
			c.onCert()
		}
	}
	_, err := f.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    load,
		UpdateFunc: func(_, obj any) { load(obj) },
		DeleteFunc: func(any) {
			if wctx.Err() == nil {
				c.cert.Store(nil)
				c.log.Warn("TLS secret deleted", "secret", ns+"/"+name)
			}
		},
	})
	if err != nil {
		c.log.Error("watching TLS secret", "error", err)
		return
	}
	f.Start(wctx.Done())
}
