// kval validates Arca's rendered Kubernetes manifests with the real API types.
//
//	kubectl kustomize knative/overlays/kind | kval [flags] [FILE...]   (no FILE or "-": stdin)
//	kval routes -check|-write ROUTES.yaml GATEWAY.conf
//	kval dockerfiles FILE...
//	kval env [-patch FILE]... FILE...   (env.go: each workload's resolved env, files, dirs)
//
// Every object is strict-decoded into its Go type (k8s.io/api, Knative Serving and Eventing,
// cert-manager, prometheus-operator): unknown fields, duplicate fields and wrong types are
// errors. Knative objects then go through their own SetDefaults and Validate (as the admission
// webhooks would on create). Finally Arca's rules run (rules.go; PromQL of alert rules and
// dashboards is parsed by Prometheus' own parser, promql.go). Every problem is printed as
// one line "Kind/namespace/name: problem"; the exit status is 1 when there is any.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "routes" {
		os.Exit(routesMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "dockerfiles" {
		os.Exit(dockerfilesMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "env" {
		os.Exit(envMain(os.Args[2:]))
	}
	os.Exit(validateMain(os.Args[1:]))
}

func validateMain(args []string) int {
	fs := flag.NewFlagSet("kval", flag.ExitOnError)
	routesFile := fs.String("routes", "", "routes.yaml: every service it names must be a Knative Service in the render")
	externalFile := fs.String("external", "", "file listing Secrets/ConfigMaps created outside the render (lines \"Kind namespace/name\")")
	untypedFile := fs.String("allow-untyped", "", "file listing kinds (group/Kind) allowed without Go types; they are reported as not type-checked")
	counts := fs.Bool("counts", false, "print the number of objects per kind")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kval [-routes routes.yaml] [-external FILE] [-allow-untyped FILE] [-counts] [FILE...]\n       kval routes -check|-write ROUTES.yaml GATEWAY.conf\n       kval dockerfiles FILE...")
		fs.PrintDefaults()
	}
	_ = fs.Parse(args)

	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	var objs []*Object
	var problems Problems
	for _, f := range files {
		data, err := readInput(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval: %v\n", err)
			return 2
		}
		o, p := decodeAll(f, data)
		objs = append(objs, o...)
		problems = append(problems, p...)
	}
	if len(objs) == 0 && len(problems) == 0 {
		fmt.Fprintln(os.Stderr, "kval: no objects in the input")
		return 2
	}

	untyped := map[string]bool{}
	if *untypedFile != "" {
		lines, err := readList(*untypedFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval: %v\n", err)
			return 2
		}
		for _, l := range lines {
			untyped[l] = true
		}
	}
	var notTypeChecked []string
	for _, o := range objs {
		if o.Typed == nil {
			key := o.GVK.Group + "/" + o.GVK.Kind
			if untyped[key] {
				notTypeChecked = append(notTypeChecked, o.ID())
			} else {
				problems.add(o, "unknown kind %s (no Go type; allowlist it with -allow-untyped to skip type checks)", o.GVK.String())
			}
		}
	}

	problems = append(problems, knativeValidate(objs)...)
	ctx := &RuleContext{Objects: objs}
	if *externalFile != "" {
		lines, err := readList(*externalFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval: %v\n", err)
			return 2
		}
		ctx.External = lines
	}
	if *routesFile != "" {
		rt, err := loadRoutes(*routesFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval: %v\n", err)
			return 2
		}
		ctx.Routes = rt
	}
	problems = append(problems, runRules(ctx)...)

	if *counts {
		printCounts(os.Stdout, objs)
	}
	for _, id := range notTypeChecked {
		fmt.Printf("not type-checked (allowlisted): %s\n", id)
	}
	problems.sortUnique()
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "kval: %d problem(s) in %d object(s)\n", len(problems), len(objs))
		return 1
	}
	fmt.Fprintf(os.Stderr, "kval: %d objects, all valid\n", len(objs))
	return 0
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// readList reads non-empty, non-comment lines.
func readList(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

func printCounts(w io.Writer, objs []*Object) {
	n := map[string]int{}
	for _, o := range objs {
		n[o.GVK.Kind+" ("+o.GVK.GroupVersion().String()+")"]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "objects per kind (%d in all):\n", len(objs))
	for _, k := range keys {
		fmt.Fprintf(w, "  %4d  %s\n", n[k], k)
	}
}

// Problems are "Kind/namespace/name: problem" lines.
type Problems []string

func (p *Problems) add(o *Object, format string, args ...any) {
	*p = append(*p, oneLine(o.ID()+": "+fmt.Sprintf(format, args...)))
}

// oneLine folds a multi-line message (YAML and Knative errors have several) into one line.
func oneLine(s string) string {
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, " ")
}

func (p *Problems) sortUnique() {
	sort.Strings(*p)
	out := (*p)[:0]
	for i, s := range *p {
		if i == 0 || s != (*p)[i-1] {
			out = append(out, s)
		}
	}
	*p = out
}
