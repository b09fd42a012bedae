package control

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/creds"
)

// Files in Options.DataDir. The key is readable by the owner only.
const (
	fileInstance = "instance"
	fileCert     = "cert.pem"
	fileKey      = "key.pem"
	fileRoots    = "roots.pem"
	fileConfig   = "config.json"
)

// minSavedValidity is how long a saved certificate must still be valid to
// be used instead of joining again.
const minSavedValidity = time.Minute

// loadCredentials returns the credentials saved in the data directory if
// they belong to this instance and are still valid, else nil.
func (c *Client) loadCredentials() *creds.Credentials {
	dir := c.o.DataDir
	if dir == "" {
		return nil
	}
	inst, err := os.ReadFile(filepath.Join(dir, fileInstance))
	if err != nil || strings.TrimSpace(string(inst)) != c.o.InstanceID {
		return nil
	}
	read := func(name string) []byte {
		b, e := os.ReadFile(filepath.Join(dir, name))
		if e != nil && err == nil {
			err = e
		}
		return b
	}
	err = nil
	cert, key, roots := read(fileCert), read(fileKey), read(fileRoots)
	if err != nil {
		c.log.Info("not reusing the saved certificate", "dir", dir, "err", err)
		return nil
	}
	cr, err := creds.Parse(cert, key, roots)
	if err != nil {
		c.log.Info("not reusing the saved certificate", "dir", dir, "err", err)
		return nil
	}
	if time.Until(cr.NotAfter()) < minSavedValidity {
		c.log.Info("not reusing the saved certificate: it expires soon", "dir", dir, "expires", cr.NotAfter().Format(time.RFC3339))
		return nil
	}
	c.log.Info("reusing the certificate saved in the data directory", "dir", dir)
	return cr
}

// saveCredentials writes cr to the data directory, if there is one. A
// failure is logged: the sidecar works on, but a restart will need a new
// join token.
func (c *Client) saveCredentials(cr *creds.Credentials) {
	if c.o.DataDir == "" {
		return
	}
	if err := writeCredentials(c.o.DataDir, c.o.InstanceID, cr); err != nil {
		c.log.Warn("saving the certificate; a restarted sidecar will need a new join token", "dir", c.o.DataDir, "err", err)
	}
}

func writeCredentials(dir, instance string, cr *creds.Credentials) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cr.Cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding the key: %w", err)
	}
	var chain []byte
	for _, der := range cr.Cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	files := []struct {
		name string
		data []byte
	}{
		// The instance file goes last: until it is written the set is
		// not used.
		{fileKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		{fileCert, chain},
		{fileRoots, cr.RootsPEM()},
		{fileInstance, []byte(instance + "\n")},
	}
	os.Remove(filepath.Join(dir, fileInstance))
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// loadConfig applies the config saved in the data directory, so a sidecar
// restarted while no controller answers serves at once. Only called with
// saved credentials of the same instance.
func (c *Client) loadConfig() {
	b, err := os.ReadFile(filepath.Join(c.o.DataDir, fileConfig))
	if err != nil {
		if !os.IsNotExist(err) {
			c.log.Info("not reusing the saved config", "err", err)
		}
		return
	}
	var u meshapi.ConfigUpdate
	if err := protojson.Unmarshal(b, &u); err != nil {
		c.log.Info("not reusing the saved config: decoding "+fileConfig, "err", err)
		return
	}
	if u.GetConfig().GetInstanceId() != "" && u.GetConfig().GetInstanceId() != c.o.InstanceID {
		c.log.Info("not reusing the saved config: it is for another instance", "instance", u.GetConfig().GetInstanceId())
		return
	}
	if err := c.w.Apply(u.GetVersion(), u.GetConfig()); err != nil {
		c.log.Info("not reusing the saved config", "err", err)
		return
	}
	c.applied.Store(u.GetVersion())
	c.log.Info("serving with the saved config version until a controller answers", "version", u.GetVersion())
}

// saveConfig keeps the config just applied in the data directory.
func (c *Client) saveConfig(u *meshapi.ConfigUpdate) {
	if c.o.DataDir == "" {
		return
	}
	b, err := protojson.Marshal(u)
	if err == nil {
		err = writeFileAtomic(filepath.Join(c.o.DataDir, fileConfig), b)
	}
	if err != nil {
		c.log.Warn("saving the config", "dir", c.o.DataDir, "err", err)
	}
}
