package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// adminFlags are how an operator command finds the controller's admin API.
type adminFlags struct {
	admin, dataDir string
}

func (a *adminFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.admin, "admin", "127.0.0.1:7401", "the controller's admin API address")
	cmd.Flags().StringVar(&a.dataDir, "data-dir", ".weft", "the controller's data directory (for the admin token)")
}

// call sends one request to the admin API with the token from
// DATA_DIR/admin.token and decodes the JSON answer into out.
func (a *adminFlags) call(method, path string, out any) error {
	tok, err := os.ReadFile(filepath.Join(a.dataDir, "admin.token"))
	if err != nil {
		return fmt.Errorf("reading the admin token: %w (pass the controller's --data-dir)", err)
	}
	req, err := http.NewRequest(method, "http://"+a.admin+path, nil)
	if err != nil {
		return fmt.Errorf("asking the controller at %s: %w", a.admin, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("asking the controller at %s: %w (is it running? pass its --admin address)", a.admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			msg += " (is the controller older than this weft? upgrade it)"
		}
		return fmt.Errorf("asking the controller at %s (%s %s): %s: %s", a.admin, method, path, resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the controller's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
