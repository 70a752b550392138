package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireDocker skips the test (fails it under CI) unless a Docker daemon
// answers.
func RequireDocker(tb testing.TB) {
	tb.Helper()
	RequireTool(tb, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("no Docker daemon: %v: %s", err, out)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip("skipping: " + msg)
	}
}

// Run runs a command with a timeout and extra environment and returns its
// combined output; the error names the command.
func Run(tb testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %v: %w", name, strings.Join(args, " "), timeout, ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), err
}

// Image is a FROM-scratch image of one of the module's commands.
type Image struct {
	Tag       string // e.g. gocached:test
	Package   string // the command, e.g. ./cmd/gocached
	Binary    string // where the Dockerfile expects it in the context, e.g. bin/gocached
	DockerDir string // the directory holding its Dockerfile and .dockerignore
}

// BuildImage builds img's static binary from the module at root and the
// image around it, in a private build context (the Dockerfile and
// .dockerignore next to the fresh binary), so the test neither needs nor
// touches a bin/ in the work tree. Nothing is pulled. It returns the
// build log.
func BuildImage(tb testing.TB, root string, img Image) (string, error) {
	tb.Helper()
	var log strings.Builder
	ctx, err := os.MkdirTemp("", "gocached-image")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(ctx)
	out, err := Run(tb, 4*time.Minute, []string{"CGO_ENABLED=0"}, "go", "build", "-C", root, "-trimpath", "-ldflags", "-s -w",
		"-o", filepath.Join(ctx, img.Binary), img.Package)
	log.WriteString(out)
	if err != nil {
		return log.String(), err
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(img.DockerDir, f))
		if err != nil {
			return log.String(), err
		}
		if err := os.WriteFile(filepath.Join(ctx, f), b, 0o644); err != nil {
			return log.String(), err
		}
	}
	out, err = Run(tb, 2*time.Minute, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "-q", "-t", img.Tag, ctx)
	log.WriteString(out)
	return log.String(), err
}
