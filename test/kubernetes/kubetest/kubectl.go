package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// kubectlTimeout bounds one kubectl run.
const kubectlTimeout = 60 * time.Second

// Kubectl runs kubectl (from PATH) as the admin against the API server and
// returns what it printed, standard output then standard error (where
// the API server's warnings go); an error carries its standard error.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		return "", fmt.Errorf("finding kubectl: %w; install it (Debian: kubernetes-client) or put it on PATH", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig", c.Kubeconfig("admin", c.AdminToken)}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String() + errb.String(), nil
}

// ApplyServerSide applies manifest files as `kubectl apply --server-side`
// does (field manager weft-test), and returns what kubectl printed.
func (c *Cluster) ApplyServerSide(paths ...string) (string, error) {
	args := []string{"apply", "--server-side", "--field-manager", "weft-test"}
	for _, p := range paths {
		args = append(args, "-f", p)
	}
	return c.Kubectl(args...)
}
