package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// exactTagRE: a tag that names one release (it carries a version number), e.g. 1.95.0-bookworm,
// v1.10.0, 3.22.1, RELEASE.2025-09-07T16-13-09Z.
var exactTagRE = regexp.MustCompile(`[0-9]+\.[0-9]+|[0-9]{8}`)

// floatingTagsAllowed: images that publish no version tags; pin their digest when pulling.
var floatingTagsAllowed = map[string]bool{
	"gcr.io/distroless/cc-debian12:nonroot":     true,
	"gcr.io/distroless/static-debian12:nonroot": true,
}

// dockerfilesMain checks Dockerfiles without a Docker engine: every base image pinned (an
// exact version tag or a digest; never latest), every stage that can be a final image runs
// as a non-root USER, no ADD of remote URLs.
//
// With -workspace Cargo.toml, a stage that runs cargo must also COPY every member of that
// workspace into its build context (cargo refuses a workspace with a missing member), and
// .dockerignore (beside the Cargo.toml) must not leave a member out.
func dockerfilesMain(args []string) int {
	fs := flag.NewFlagSet("kval dockerfiles", flag.ExitOnError)
	workspace := fs.String("workspace", "", "Cargo.toml of the workspace the cargo stages build")
	_ = fs.Parse(args)
	files := fs.Args()
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "usage: kval dockerfiles [-workspace Cargo.toml] FILE...")
		return 2
	}
	var members []string
	if *workspace != "" {
		var err error
		if members, err = workspaceMembers(*workspace); err != nil {
			fmt.Fprintf(os.Stderr, "kval dockerfiles: %v\n", err)
			return 2
		}
	}
	bad := 0
	for _, f := range files {
		problems, err := checkDockerfile(f, members)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval dockerfiles: %v\n", err)
			return 2
		}
		for _, p := range problems {
			fmt.Printf("%s: %s\n", f, p)
		}
		bad += len(problems)
	}
	if bad > 0 {
		return 1
	}
	fmt.Fprintf(os.Stderr, "kval dockerfiles: %d Dockerfile(s): bases pinned, non-root final stages, %d workspace members in every cargo build context\n", len(files), len(members))
	return 0
}

type stage struct {
	name, base string
	line       int
	user       string // last USER instruction
	usedBy     bool   // another stage builds FROM it or copies --from it
	cargo      bool   // a RUN runs cargo
	copied     []string
}

func checkDockerfile(name string, members []string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	// join continuation lines, drop comments
	var lines []struct {
		n    int
		text string
	}
	cur, start := "", 0
	for i, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") || (t == "" && cur == "") {
			continue
		}
		if cur == "" {
			start = i + 1
		}
		if strings.HasSuffix(t, "\\") {
			cur += strings.TrimSuffix(t, "\\") + " "
			continue
		}
		cur += t
		lines = append(lines, struct {
			n    int
			text string
		}{start, cur})
		cur = ""
	}
	args := map[string]string{}
	var stages []*stage
	var problems []string
	expand := func(s string) string {
		return regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`).ReplaceAllStringFunc(s, func(m string) string {
			k := strings.Trim(m, "${}")
			if v, ok := args[k]; ok {
				return v
			}
			return m
		})
	}
	for _, l := range lines {
		fields := strings.Fields(l.text)
		if len(fields) == 0 {
			continue
		}
		instr := strings.ToUpper(fields[0])
		switch instr {
		case "ARG":
			if kv := strings.SplitN(fields[1], "=", 2); len(kv) == 2 {
				if _, set := args[kv[0]]; !set || len(stages) == 0 {
					args[kv[0]] = strings.Trim(kv[1], `"`)
				}
			}
		case "FROM":
			rest := fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				problems = append(problems, fmt.Sprintf("line %d: FROM without an image", l.n))
				continue
			}
			st := &stage{base: expand(rest[0]), line: l.n}
			if len(rest) >= 3 && strings.EqualFold(rest[1], "AS") {
				st.name = rest[2]
			}
			// FROM ${ARG}: a build argument selects the stage (BINARIES=build|prebuilt), so
			// every earlier stage may be the one used
			selectable := strings.Contains(rest[0], "$")
			for _, prev := range stages {
				if prev.name != "" && (prev.name == st.base || selectable) {
					prev.usedBy = true
				}
			}
			stages = append(stages, st)
		case "USER":
			if len(stages) > 0 {
				stages[len(stages)-1].user = fields[1]
			}
		case "RUN":
			if len(stages) > 0 && regexp.MustCompile(`\bcargo\s+(build|install)\b`).MatchString(l.text) {
				stages[len(stages)-1].cargo = true
			}
		case "COPY":
			if len(stages) > 0 && !strings.Contains(l.text, "--from=") {
				var srcs []string
				for _, f := range fields[1:] {
					if !strings.HasPrefix(f, "--") {
						srcs = append(srcs, strings.TrimSuffix(strings.TrimPrefix(f, "./"), "/"))
					}
				}
				if len(srcs) > 1 {
					st := stages[len(stages)-1]
					st.copied = append(st.copied, srcs[:len(srcs)-1]...)
				}
			}
			for _, f := range fields[1:] {
				if strings.HasPrefix(f, "--from=") {
					src := strings.TrimPrefix(f, "--from=")
					found := false
					for _, prev := range stages {
						if prev.name == src {
							prev.usedBy = true
							found = true
						}
					}
					if !found {
						checkImageRef(&problems, l.n, expand(src))
					}
				}
			}
		case "ADD":
			for _, f := range fields[1:] {
				if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
					problems = append(problems, fmt.Sprintf("line %d: ADD of a remote URL (unpinned content); download and verify in a RUN step", l.n))
				}
			}
		}
	}
	if len(stages) == 0 {
		return append(problems, "no FROM"), nil
	}
	isStage := map[string]bool{}
	for _, st := range stages {
		if st.name != "" {
			isStage[st.name] = true
		}
	}
	for _, st := range stages {
		if !st.cargo {
			continue
		}
		for _, m := range members {
			covered := false
			for _, c := range st.copied {
				if c == "." || c == m || strings.HasPrefix(m, c+"/") {
					covered = true
				}
			}
			if !covered {
				problems = append(problems, fmt.Sprintf("line %d: stage %q runs cargo but does not COPY the workspace member %q (cargo refuses a workspace with a missing member)", st.line, st.name, m))
			}
		}
	}
	for i, st := range stages {
		if !isStage[st.base] {
			checkImageRef(&problems, st.line, st.base)
		}
		final := !st.usedBy || i == len(stages)-1
		if !final {
			continue
		}
		label := fmt.Sprintf("stage %q", st.name)
		if st.name == "" {
			label = fmt.Sprintf("stage %d", i+1)
		}
		u := strings.SplitN(st.user, ":", 2)[0]
		switch {
		case st.user == "":
			problems = append(problems, fmt.Sprintf("line %d: final %s has no USER (it would run as the base image's user, often root)", st.line, label))
		case u == "0" || u == "root":
			problems = append(problems, fmt.Sprintf("line %d: final %s runs as root (USER %s)", st.line, label, st.user))
		}
	}
	return problems, nil
}

func checkImageRef(problems *[]string, line int, image string) {
	if image == "scratch" { // Docker's reserved empty image: nothing to pin
		return
	}
	if strings.Contains(image, "$") {
		*problems = append(*problems, fmt.Sprintf("line %d: base image %q depends on an ARG without a default", line, image))
		return
	}
	if digestRE.MatchString(image) {
		return
	}
	tag := imageTag(image)
	switch {
	case tag == "":
		*problems = append(*problems, fmt.Sprintf("line %d: base image %q has no tag (pin an exact version or a digest)", line, image))
	case tag == "latest":
		*problems = append(*problems, fmt.Sprintf("line %d: base image %q uses latest", line, image))
	case !exactTagRE.MatchString(tag) && !floatingTagsAllowed[image]:
		*problems = append(*problems, fmt.Sprintf("line %d: base image %q: tag %q is not an exact version (pin one, or a digest)", line, image, tag))
	}
}

// workspaceMembers: the directories of a Cargo workspace's members ("functions/*" stands for
// the folder functions), checked against the .dockerignore beside it.
func workspaceMembers(cargoToml string) ([]string, error) {
	data, err := os.ReadFile(cargoToml)
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?s)\[workspace\].*?members\s*=\s*\[(.*?)\]`).FindSubmatch(data)
	if m == nil {
		return nil, fmt.Errorf("%s: no [workspace] members", cargoToml)
	}
	var members []string
	for _, q := range regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(m[1], -1) {
		members = append(members, strings.TrimSuffix(strings.TrimSuffix(string(q[1]), "/*"), "/"))
	}
	ignore, err := os.ReadFile(filepath.Join(filepath.Dir(cargoToml), ".dockerignore"))
	if err == nil {
		for _, l := range strings.Split(string(ignore), "\n") {
			l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "/"), "/")
			for _, mem := range members {
				if l == mem {
					return nil, fmt.Errorf(".dockerignore leaves out the workspace member %q", mem)
				}
			}
		}
	}
	return members, nil
}
