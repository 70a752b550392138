package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"

	"github.com/gocached/gocached/internal/testutil"
)

// k8sObject is the part of a Kubernetes manifest the deployment checks
// read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		ClusterIP string `yaml:"clusterIP"`
		Selector  struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Ports []struct {
			Name string `yaml:"name"`
			Port int    `yaml:"port"`
		} `yaml:"ports"`
		ServiceName     string `yaml:"serviceName"`
		MinReadySeconds int    `yaml:"minReadySeconds"`
		MaxUnavailable  any    `yaml:"maxUnavailable"`
		Template        struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

// repoFile is a file of the repository, from this package's directory.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", rel)
}

// imageBinary is the path of gocached in the image (the Dockerfile's
// ENTRYPOINT), which probe commands must name.
func imageBinary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no ENTRYPOINT in the Dockerfile")
	}
	return string(m[1])
}

// checkDaemonArgs requires args to be a gocached command line that starts
// the daemon, every option implemented, and returns it parsed.
func checkDaemonArgs(t *testing.T, where string, args []string) *options {
	t.Helper()
	o, act, err := parseArgs(append([]string{"gocached"}, args...))
	switch {
	case err != nil:
		t.Fatalf("%s: args %q: %v", where, args, err)
	case act != actRun:
		t.Fatalf("%s: args %q do not start the daemon", where, args)
	case len(o.notImplemented) > 0 || len(o.positionals) > 0:
		t.Fatalf("%s: args %q: not implemented %q, stray words %q", where, args, o.notImplemented, o.positionals)
	}
	return o
}

// checkProbe requires a probe's command to be the image's gocached with a
// subcommand that answers for a running node on the daemon's port.
func checkProbe(t *testing.T, where string, p *k8sProbe, bin string, port int) {
	t.Helper()
	if p == nil || p.Exec == nil || len(p.Exec.Command) < 2 {
		t.Fatalf("%s: want an exec probe running %s healthcheck", where, bin)
	}
	cmd := p.Exec.Command
	if cmd[0] != bin {
		t.Fatalf("%s: probe runs %q; the image's binary is %s", where, cmd[0], bin)
	}
	if _, ok := subcommands[cmd[1]]; !ok {
		t.Fatalf("%s: %q is not a gocached subcommand", where, cmd[1])
	}
	// The probe's default address is the daemon's default port; run it
	// against a node of our own to see it parse and succeed.
	if port != 11211 {
		t.Fatalf("%s: the daemon listens on %d, the probe checks 127.0.0.1:11211", where, port)
	}
	addr := testutil.StartGocached(t, nil)
	var out, errb bytes.Buffer
	code, ok := runSubcommand(append(append([]string{"gocached"}, cmd[1:]...), "--addr", addr), &out, &errb)
	if !ok || code != 0 || !strings.HasPrefix(out.String(), "VERSION ") {
		t.Fatalf("%s: %q: exit %d %q %q", where, cmd, code, out.String(), errb.String())
	}
}

func TestKubernetesManifests(t *testing.T) {
	f, err := os.Open(repoFile(t, "deploy/kubernetes/gocached.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byKind := map[string]*k8sObject{}
	dec := yaml.NewDecoder(f)
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		byKind[o.Kind] = &o
	}
	svc, sts, pdb := byKind["Service"], byKind["StatefulSet"], byKind["PodDisruptionBudget"]
	if svc == nil || sts == nil || pdb == nil {
		t.Fatalf("want a Service, a StatefulSet and a PodDisruptionBudget, have %v", byKind)
	}
	if svc.Spec.ClusterIP != "None" {
		t.Errorf("the Service is not headless: clusterIP %q", svc.Spec.ClusterIP)
	}
	if sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("StatefulSet serviceName %q, Service %q", sts.Spec.ServiceName, svc.Metadata.Name)
	}
	if sts.Spec.MinReadySeconds <= 0 {
		t.Error("StatefulSet without minReadySeconds")
	}
	if pdb.Spec.MaxUnavailable != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	pod := sts.Spec.Template
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if pod.Metadata.Labels[k] != v || sts.Spec.Selector.MatchLabels[k] != v {
			t.Errorf("PodDisruptionBudget selector %s=%s does not select the pods", k, v)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if len(c.Command) != 0 {
		t.Errorf("command %q overrides the image's entrypoint", c.Command)
	}
	o := checkDaemonArgs(t, "StatefulSet", c.Args)
	bin := imageBinary(t)
	for name, p := range map[string]*k8sProbe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		checkProbe(t, name, p, bin, o.cfg.Port)
	}

	// -e is on the pod's volume, and the save has time to finish.
	if o.memoryFile == "" {
		t.Error("no -e: rollouts start cold")
	}
	onVolume := false
	for _, m := range c.VolumeMounts {
		onVolume = onVolume || strings.HasPrefix(o.memoryFile, strings.TrimSuffix(m.MountPath, "/")+"/")
	}
	if !onVolume {
		t.Errorf("-e %s is on no volume mount", o.memoryFile)
	}
	if pod.Spec.TerminationGracePeriodSeconds < 30 {
		t.Errorf("terminationGracePeriodSeconds %d leaves little time to save", pod.Spec.TerminationGracePeriodSeconds)
	}

	// Prometheus scrapes the port metrics_listen opens, which the
	// container and the Service name.
	ann := pod.Metadata.Annotations
	_, mport, err := net.SplitHostPort(o.cfg.Extended["metrics_listen"])
	if err != nil || ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != mport {
		t.Errorf("annotations %v, metrics_listen %q", ann, o.cfg.Extended["metrics_listen"])
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != atoiT(t, mport) || ports["memcache"] != o.cfg.Port {
		t.Errorf("container ports %v, daemon port %d, metrics %s", ports, o.cfg.Port, mport)
	}
	// The SRV name clients use is _memcache._tcp.<service>.
	named := false
	for _, p := range svc.Spec.Ports {
		named = named || p.Name == "memcache" && p.Port == o.cfg.Port
	}
	if !named {
		t.Errorf("the Service has no port named memcache on %d: %v", o.cfg.Port, svc.Spec.Ports)
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestComposeAndStackArgs checks the gocached command of every compose
// file and the swarm stack with gocached's own parser, ${VAR:-default}
// read as its default.
func TestComposeAndStackArgs(t *testing.T) {
	defaults := regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`)
	files, err := filepath.Glob(repoFile(t, "examples/compose/docker-compose*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("compose files: %v %v", files, err)
	}
	files = append(files, repoFile(t, "examples/swarm/stack.yml"))
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Services map[string]struct {
				Image   string `yaml:"image"`
				Command any    `yaml:"command"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name, svc := range doc.Services {
			if !strings.Contains(defaults.ReplaceAllString(svc.Image, "$1"), "gocached:") {
				continue
			}
			var args []string
			switch c := svc.Command.(type) {
			case string:
				args = strings.Fields(defaults.ReplaceAllString(c, "$1"))
			case []any:
				for _, a := range c {
					args = append(args, defaults.ReplaceAllString(fmt.Sprint(a), "$1"))
				}
			}
			checkDaemonArgs(t, filepath.Base(f)+" "+name, args)
			checked++
		}
	}
	if checked < 5 {
		t.Errorf("checked %d gocached services", checked)
	}
}
