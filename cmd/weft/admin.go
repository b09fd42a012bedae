package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/core/api"
)

// adminFlags are how an operator command finds and trusts the controller's
// admin API. Each flag wins over its environment variable, like Nomad's
// NOMAD_ADDR, NOMAD_TOKEN and NOMAD_CACERT:
//
//	address  --admin    > WEFT_ADDR   > https://127.0.0.1:7401
//	token    --data-dir > WEFT_TOKEN  > .weft/admin.token
//	CA       --ca-cert  > --data-dir  > WEFT_CACERT > .weft/ca/ca.crt
type adminFlags struct {
	admin, dataDir, caCert string
	flags                  *pflag.FlagSet
}

// adminHelp ends the help of every command that asks the admin API.
const adminHelp = `
The admin API is HTTPS, served with the controller's own certificate (signed
by the mesh CA). The command verifies it with the CA bundle in
DATA_DIR/ca/ca.crt, or --ca-cert, and sends the token in DATA_DIR/admin.token.
From another machine, set the environment like Nomad's NOMAD_ADDR and
NOMAD_TOKEN (flags win over it):

  WEFT_ADDR=https://HOST:7401     the controller's --admin address
  WEFT_TOKEN=...                  the content of its DATA_DIR/admin.token
  WEFT_CACERT=ca.pem              the bundle, as ` + "`weft ca roots --pem`" + ` prints it

Plain http:// addresses are refused: the token would cross the network in clear.`

func (a *adminFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&a.admin, "admin", api.DefaultAddr, "the controller's admin API, https://HOST:PORT (or set "+api.EnvAddr+")")
	fl.StringVar(&a.dataDir, "data-dir", ".weft", "the controller's data directory, for its admin token and CA bundle (or set "+api.EnvToken+" and "+api.EnvCACert+")")
	fl.StringVar(&a.caCert, "ca-cert", "", "the mesh's CA bundle (PEM) that verifies the controller (or set "+api.EnvCACert+"; default DATA_DIR/ca/ca.crt)")
	a.flags = fl
}

// resolve applies the flags and the environment to an api.Config.
func (a *adminFlags) resolve() (api.Config, error) {
	changed := func(name string) bool { return a.flags != nil && a.flags.Changed(name) }
	cfg := api.Config{Addr: a.admin}
	if v := os.Getenv(api.EnvAddr); v != "" && !changed("admin") {
		cfg.Addr = v
	}
	if v := os.Getenv(api.EnvToken); v != "" && !changed("data-dir") {
		cfg.Token = v
	} else {
		tok, err := api.ReadToken(a.dataDir)
		if err != nil {
			return cfg, err
		}
		cfg.Token = tok
	}
	switch v := os.Getenv(api.EnvCACert); {
	case changed("ca-cert"):
		cfg.CACert = a.caCert
	case v != "" && !changed("data-dir"):
		cfg.CACert = v
	default:
		cfg.CACert = filepath.Join(a.dataDir, "ca", api.CAFile)
	}
	return cfg, nil
}

// call sends one request to the admin API and decodes the JSON answer
// into out.
func (a *adminFlags) call(method, path string, out any) error {
	return a.callWith(method, path, nil, out)
}

// callWith is call with a JSON request body (in, when not nil).
func (a *adminFlags) callWith(method, path string, in, out any) error {
	cfg, err := a.resolve()
	if err != nil {
		return err
	}
	c, err := api.New(cfg)
	if err != nil {
		return err
	}
	err = c.Call(context.Background(), method, path, in, out)
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusMethodNotAllowed):
		return fmt.Errorf("%w (is the controller older than this weft? upgrade it)", err)
	case errors.As(err, &se) && se.Code == http.StatusUnsupportedMediaType:
		return fmt.Errorf("%w (this is the controller's sidecar API, its --listen address; the admin API is on its --admin address)", err)
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
