package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// routesNamespace holds every Knative Service the gateway routes to.
const routesNamespace = "arca"

// Routes is knative/base/ingress/routes.yaml.
type Routes struct {
	Routes []Route `json:"routes"`
}

// Route is one entry: a path template or prefix, optional methods, the answering service.
type Route struct {
	Path    string   `json:"path"`
	Methods []string `json:"methods,omitempty"`
	Service string   `json:"service"`
}

var (
	segmentRE = regexp.MustCompile(`^\{[a-z_][a-z0-9_]*\}$`)
	literalRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	methodRE  = regexp.MustCompile(`^[A-Z]+$`)
	serviceRE = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
)

func loadRoutes(name string) (*Routes, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var r Routes
	strict, err := kjson.UnmarshalStrict(js, &r, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %v", name, strict[0])
	}
	if len(r.Routes) == 0 {
		return nil, fmt.Errorf("%s: no routes", name)
	}
	seen := map[string]bool{}
	for i, rt := range r.Routes {
		if _, err := rt.regex(); err != nil {
			return nil, fmt.Errorf("%s: routes[%d] %s: %v", name, i, rt.Path, err)
		}
		if !serviceRE.MatchString(rt.Service) {
			return nil, fmt.Errorf("%s: routes[%d] %s: bad service %q", name, i, rt.Path, rt.Service)
		}
		for _, m := range rt.Methods {
			if !methodRE.MatchString(m) {
				return nil, fmt.Errorf("%s: routes[%d] %s: bad method %q", name, i, rt.Path, m)
			}
		}
		key := strings.Join(rt.Methods, ",") + " " + rt.Path
		if seen[key] {
			return nil, fmt.Errorf("%s: routes[%d] %s: duplicate entry", name, i, rt.Path)
		}
		seen[key] = true
	}
	last := r.Routes[len(r.Routes)-1]
	if last.Path != "/*" || len(last.Methods) != 0 {
		return nil, fmt.Errorf("%s: the last route must be the catch-all \"/*\"", name)
	}
	return &r, nil
}

// regex is the PCRE matched against "$request_method $uri".
func (rt Route) regex() (string, error) {
	p := rt.Path
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path must start with /")
	}
	prefix := false
	if strings.HasSuffix(p, "/*") {
		prefix = true
		p = strings.TrimSuffix(p, "/*")
	}
	var b strings.Builder
	if p != "" {
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			switch {
			case segmentRE.MatchString(seg):
				b.WriteString("/[^/]+")
			case literalRE.MatchString(seg):
				b.WriteString("/" + regexp.QuoteMeta(seg))
			default:
				return "", fmt.Errorf("segment %q is neither a literal nor {param}", seg)
			}
		}
	}
	path := b.String()
	if prefix {
		path += "(/.*)?"
		if rt.Path == "/*" {
			path = "/.*"
		}
	}
	method := "[A-Z]+"
	if len(rt.Methods) > 0 {
		method = "(" + strings.Join(rt.Methods, "|") + ")"
	}
	return "^" + method + " " + path + "$", nil
}

func routesMain(args []string) int {
	fs := flag.NewFlagSet("kval routes", flag.ExitOnError)
	check := fs.Bool("check", false, "fail when GATEWAY.conf differs from what ROUTES.yaml generates")
	write := fs.Bool("write", false, "(re)write GATEWAY.conf from ROUTES.yaml")
	_ = fs.Parse(args)
	if fs.NArg() != 2 || *check == *write {
		fmt.Fprintln(os.Stderr, "usage: kval routes -check|-write ROUTES.yaml GATEWAY.conf")
		return 2
	}
	r, err := loadRoutes(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kval routes: %v\n", err)
		return 1
	}
	conf := gatewayConf(r)
	if *write {
		if err := os.WriteFile(fs.Arg(1), conf, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "kval routes: %v\n", err)
			return 1
		}
		return 0
	}
	have, err := os.ReadFile(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kval routes: %v\n", err)
		return 1
	}
	if !bytes.Equal(have, conf) {
		fmt.Fprintf(os.Stderr, "kval routes: %s is out of date with %s: run `kval routes -write %s %s`\n", fs.Arg(1), fs.Arg(0), fs.Arg(0), fs.Arg(1))
		return 1
	}
	fmt.Fprintf(os.Stderr, "kval routes: %s matches %s (%d routes)\n", fs.Arg(1), fs.Arg(0), len(r.Routes))
	return 0
}

// gatewayConf renders the gateway's complete nginx.conf.
func gatewayConf(r *Routes) []byte {
	var m strings.Builder
	for _, rt := range r.Routes {
		re, _ := rt.regex()
		m.WriteString(fmt.Sprintf("        %-64s %s;\n", "\"~"+re+"\"", rt.Service))
	}
	return []byte(strings.Replace(gatewayTemplate, "@ROUTES@", m.String(), 1))
}

const gatewayTemplate = `# GENERATED from knative/base/ingress/routes.yaml by tools/kval (kval routes -write):
# do not edit by hand; scripts/deploy-check.sh fails when this file is out of date.
#
# The gateway: Knative Service "arca", the only one reachable from outside. Kourier
# terminates TLS (cert-manager) and sends every request for the Arca host here; this nginx
# picks the answering service by method and path and proxies to its cluster-local address.
worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path /tmp/client_temp;
    proxy_temp_path /tmp/proxy_temp;
    fastcgi_temp_path /tmp/fastcgi_temp;
    uwsgi_temp_path /tmp/uwsgi_temp;
    scgi_temp_path /tmp/scgi_temp;

    server_tokens off;
    log_format json escape=json '{"time":"$time_iso8601","component":"gateway","method":"$request_method",'
                                '"path":"$arca_log_path","status":$status,"bytes":$body_bytes_sent,'
                                '"duration_s":$request_time,"service":"$arca_service","client":"$arca_client",'
                                '"request_id":"$http_x_request_id","upstream_request_id":"$upstream_http_x_request_id"}';
    access_log /dev/stdout json;
    # Paths that carry a bearer secret (single-use download links, upload URLs) are logged as
    # their template: the log ships to Loki, where many more people read it.
    map $uri $arca_log_path {
        "~^/api/download-links/"   "/api/download-links/{token}";
        "~^/api/uploads/"          "/api/uploads/{token}";
        default                    $uri;
    }

    # Kind's cluster DNS (kube-dns at 10.96.0.10; knative/overlays/kind/kind-cluster.yaml fixes the subnet).
    # Names are resolved per request, so a Service created after the gateway is found.
    resolver 10.96.0.10 valid=10s ipv6=off;

    # The answering service: first matching entry of routes.yaml.
    map "$request_method $uri" $arca_service {
        default none;
@ROUTES@    }

    # Knative Services answer on their cluster-local name (kourier-internal routes by Host);
    # MinIO gets the browser's Host untouched, which its presigned-URL signatures cover.
    map $arca_service $arca_upstream {
        minio   minio.arca-data.svc.cluster.local:9000;
        default $arca_service.arca.svc.cluster.local;
    }
    map $arca_service $arca_host {
        minio   $host;
        default $arca_service.arca.svc.cluster.local;
    }
    # Kourier sets X-Forwarded-Proto (http on port 80, https on 443); keep it for the
    # functions (HSTS, Secure cookies). Without it the request came from inside the cluster.
    map $http_x_forwarded_proto $arca_proto {
        ""      https;
        default $http_x_forwarded_proto;
    }
    # The client's address, and only it, goes on to the functions. Kourier (use-remote-address,
    # trusted-hops-count 1: kind-setup.sh) appends the peer it accepted the connection from;
    # this pod's queue-proxy then appends Kourier's address. So the real client is the entry
    # second from the right, whatever the client wrote to the left of it, and the header sent
    # on holds that one address (a client's own X-Forwarded-For never reaches a function).
    map $http_x_forwarded_for $arca_client {
        "~(?:^|,)\s*(?<client>[0-9A-Fa-f.:]+)\s*,\s*[0-9A-Fa-f.:]+\s*$"  $client;
        default                                                          unknown;
    }
    map $arca_proto $arca_hsts {
        https   "max-age=31536000; includeSubDomains";
        default "";
    }

    server {
        listen 8080;
        server_name _;

        # Artifacts stream to and from MinIO through here: no size limit and no buffering
        # (the functions bound their own JSON bodies; MinIO checks size and checksum).
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 600s;
        proxy_send_timeout 600s;

        # cluster-local and unknown paths: a problem+json 404, never the SPA's index.html
        location = /.gateway/not-found {
            internal;
            default_type application/problem+json;
            return 404 '{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}';
        }

        location = /.gateway/health {
            access_log off;
            default_type text/plain;
            return 200 "ok\n";
        }

        # HSTS on everything the edge answers over HTTPS (its own 404s and redirects too);
        # a function's own header is replaced, not doubled.
        proxy_hide_header Strict-Transport-Security;
        add_header Strict-Transport-Security $arca_hsts always;

        location / {
            # plain HTTP from outside: to HTTPS
            if ($arca_proto = "http") {
                return 308 https://$host$request_uri;
            }
            if ($arca_service = none) {
                rewrite ^ /.gateway/not-found last;
            }
            proxy_pass http://$arca_upstream$request_uri;
            proxy_set_header Host $arca_host;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $arca_proto;
            proxy_set_header X-Forwarded-For $arca_client;
            # headers a client could forge that some hop might read as its address
            proxy_set_header Forwarded "";
            proxy_set_header X-Real-IP "";
            proxy_set_header X-Envoy-External-Address "";
            proxy_set_header Connection "";
        }
    }
}
`
