package nomad

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/plugins/sdk"
)

// Claims are the Nomad-specific claims of a workload identity JWT.
type Claims struct {
	Namespace    string `json:"nomad_namespace"`
	JobID        string `json:"nomad_job_id"`
	AllocationID string `json:"nomad_allocation_id"`
	Task         string `json:"nomad_task"`
}

// ParseClaims reads the claims of a workload identity JWT without
// checking its signature: only Nomad can (see VerifyIdentity).
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("the credential is not a JWT: give the sidecar the task's workload identity (identity { env = true } puts it in NOMAD_TOKEN)")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("decoding the JWT's claims: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil {
		return Claims{}, fmt.Errorf("decoding the JWT's claims: %w", err)
	}
	if c.Namespace == "" || c.JobID == "" || c.AllocationID == "" || c.Task == "" {
		return Claims{}, errors.New("the JWT is not a Nomad workload identity: it lacks nomad_namespace, nomad_job_id, nomad_allocation_id or nomad_task")
	}
	return c, nil
}

// VerifyIdentity checks a sidecar's workload identity JWT and answers the
// service it proves. Nomad 1.6 publishes no key to check the signature
// with, so Nomad is asked: the JWT is presented as a token to read the
// variable path nomad/jobs/<job>/<group>/<task>, which Nomad lets exactly
// the tasks of that job, group and task read, and only after it has checked
// the signature with its keyring and that the allocation is still running
// (a 404 is as good as a 200: the variable need not exist). Before that,
// the same read without a token must be refused, or Nomad does not enforce
// ACLs and proves nothing. Then the (now trusted) claims must name the
// instance's allocation, and the service must be registered by it.
func (a *Adapter) VerifyIdentity(ctx context.Context, req *sdk.VerifyIdentityRequest) (*sdk.VerifyIdentityResponse, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	claims, err := ParseClaims(req.Credential)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if req.InstanceID == "" {
		return verifyNodeProxy(ctx, cfg, claims, req.Credential, "", "")
	}
	allocID, service, ok := strings.Cut(req.InstanceID, "/")
	if !ok || allocID == "" || service == "" {
		return nil, fmt.Errorf("instance %q is not a Nomad instance ID: want <alloc ID>/<service>, as --instance ${NOMAD_ALLOC_ID}/<service>", req.InstanceID)
	}
	if claims.AllocationID != allocID {
		// Another allocation's instance: only a node proxy may ask (nodeproxy.go).
		return verifyNodeProxy(ctx, cfg, claims, req.Credential, allocID, service)
	}
	if _, err := proveIdentity(ctx, cfg, claims, req.Credential); err != nil {
		return nil, err
	}
	// The claims are Nomad's own now. The service must be the allocation's.
	if _, err := registration(ctx, cfg, claims.Namespace, allocID, service); err != nil {
		return nil, fmt.Errorf("%w: a sidecar gets a certificate only for its own group's service", err)
	}
	return &sdk.VerifyIdentityResponse{InstanceID: req.InstanceID, Service: service, Namespace: claims.Namespace}, nil
}

// proveIdentity has Nomad check a workload identity (see VerifyIdentity)
// and answers its allocation, which is running.
func proveIdentity(ctx context.Context, cfg *config, claims Claims, credential string) (*api.Allocation, error) {
	allocID := claims.AllocationID
	alloc, _, err := cfg.client.Allocations().Info(allocID, (&api.QueryOptions{Namespace: claims.Namespace}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading allocation %s from Nomad: %w", allocID, err)
	}
	if alloc.Namespace != claims.Namespace || alloc.JobID != claims.JobID {
		return nil, fmt.Errorf("allocation %s belongs to job %s in namespace %s, not to the identity's job %s in %s", allocID, alloc.JobID, alloc.Namespace, claims.JobID, claims.Namespace)
	}
	if alloc.ClientTerminalStatus() || alloc.DesiredStatus != api.AllocDesiredStatusRun {
		return nil, fmt.Errorf("allocation %s has stopped; its identity proves nothing", allocID)
	}
	path := "nomad/jobs/" + claims.JobID + "/" + alloc.TaskGroup + "/" + claims.Task
	switch code, err := readVariable(ctx, cfg, path, claims.Namespace, ""); {
	case err != nil:
		return nil, err
	case code != http.StatusForbidden:
		return nil, fmt.Errorf("Nomad at %s let an anonymous request read variable %s (HTTP %d): it does not enforce ACLs, so it cannot vouch for workload identities; enable ACLs (acl { enabled = true }) or join sidecars with join tokens", cfg.addr, path, code)
	}
	switch code, err := readVariable(ctx, cfg, path, claims.Namespace, credential); {
	case err != nil:
		return nil, err
	case code == http.StatusForbidden:
		return nil, errors.New("Nomad refused the workload identity: it is forged, altered, or its allocation has stopped")
	case code != http.StatusOK && code != http.StatusNotFound:
		return nil, fmt.Errorf("checking the workload identity: Nomad answered HTTP %d", code)
	}
	return alloc, nil
}

// registration finds allocation allocID's registration of service.
func registration(ctx context.Context, cfg *config, namespace, allocID, service string) (*api.ServiceRegistration, error) {
	regs, _, err := cfg.client.Services().Get(service, (&api.QueryOptions{Namespace: namespace}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading Nomad service %s: %w", service, err)
	}
	for _, r := range regs {
		if r.AllocID == allocID {
			return r, nil
		}
	}
	return nil, fmt.Errorf("allocation %s registers no service %s in namespace %s", allocID, service, namespace)
}

// readVariable reads a variable with token ("" for none) and answers the
// HTTP status.
func readVariable(ctx context.Context, cfg *config, path, namespace, token string) (int, error) {
	u := strings.TrimRight(cfg.addr, "/") + "/v1/var/" + path + "?namespace=" + url.QueryEscape(namespace)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("checking the workload identity: %w", err)
	}
	if token != "" {
		r.Header.Set("X-Nomad-Token", token)
	}
	resp, err := cfg.http.Do(r)
	if err != nil {
		return 0, fmt.Errorf("checking the workload identity with Nomad at %s: %w", cfg.addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}

var _ sdk.IdentityVerifier = (*Adapter)(nil)
