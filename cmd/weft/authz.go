package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
)

// exitError ends the command with its own exit code (main).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

func newAuthzCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "authz CALLER CALLEE [METHOD PATH]",
		Short: "Would the mesh let CALLER call CALLEE (a request, with METHOD and PATH), and by which intention",
		Long: `authz asks the running controller whether CALLER may call CALLEE, and, with
METHOD and PATH, whether that request would pass, like consul intention
check. The controller decides as CALLEE's sidecar would, with the sidecar's
own code on the rules the policy in force gives it, after the sidecar's
canonicalization of PATH: a spelling such as /%61dmin, /x/../admin, //admin
or a ;parameter gets the answer the sidecar really gives. The answer names
the intention that decides and where it is written (file:line), or says that
default_action decides.

CALLER is a service (svc, in the namespace of its service block, or ns/svc)
or a SPIFFE ID; CALLEE is svc or ns/svc.

Exit status: 0 allowed, 1 denied (or refused as a bad request), 2 the
question could not be answered.
` + adminHelp,
		Example: `  weft authz web api
  weft authz shop/web api GET /orders/1
  weft authz spiffe://weft.local/ns/default/svc/web api DELETE '/%61dmin'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 && len(args) != 4 {
				return &exitError{2, fmt.Errorf("give CALLER CALLEE, or CALLER CALLEE METHOD PATH (got %d arguments)", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			v := url.Values{"caller": {args[0]}, "callee": {args[1]}}
			if len(args) == 4 {
				v.Set("method", args[2])
				v.Set("path", args[3])
			}
			var rep api.AuthzReport
			if err := a.call("GET", "/v1/authz?"+v.Encode(), &rep); err != nil {
				return &exitError{2, err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, rep); err != nil {
					return &exitError{2, err}
				}
			} else {
				fmt.Fprintln(out, authzText(rep))
			}
			if !rep.Allowed {
				return &exitError{1, errors.New("denied")}
			}
			return nil
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON")
	return cmd
}

// authzText is the answer for a person:
//
//	ALLOWED  spiffe://weft.local/ns/default/svc/web -> default/api  GET /orders (as /orders)
//	  by intention "web -> api" at policy/mesh.hcl:12
func authzText(r api.AuthzReport) string {
	verdict := "DENIED"
	if r.Allowed {
		verdict = "ALLOWED"
	}
	s := fmt.Sprintf("%s  %s -> %s", verdict, r.Caller, r.Callee)
	if r.Path != "" {
		s += fmt.Sprintf("  %s %q", r.Method, r.Path)
		if r.CanonicalPath != "" && r.CanonicalPath != r.Path {
			s += fmt.Sprintf(" (the sidecar reads %q)", r.CanonicalPath)
		}
	}
	switch {
	case r.BadRequest != "":
		s += "\n  the sidecar refuses it as a bad request (400): " + r.BadRequest
		return s
	case r.Intention != "":
		s += fmt.Sprintf("\n  by intention %q", r.Intention)
		if r.Declared != "" {
			s += " at " + r.Declared
		}
	default:
		s += fmt.Sprintf("\n  by the mesh's default_action = %q (no intention applies)", r.DefaultAction)
	}
	if r.Reason != "" {
		s += "\n  the sidecar answers: " + r.Reason
	}
	return s
}
