package dashboard

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// Prefix is where the admin API mounts the dashboard: the page is at
// /ui/ and its files below it.
const Prefix = "/ui/"

//go:embed ui
var files embed.FS

// SecurityHeaders are set on every answer of the handler: the page runs
// only its own script and style from this origin, fetches only this
// origin, is never framed, sends no referrer, and is not cached (a new
// controller binary serves its own files).
var SecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

type asset struct {
	body        []byte
	contentType string
}

// Handler serves the dashboard's embedded files at Prefix: GET and HEAD
// only, each file by its exact name (Prefix itself is index.html);
// anything else is 404, with no directory listing and no path cleaning,
// so no spelling of a path reaches anything but these files. It needs no
// token: the files hold no data.
func Handler() http.Handler {
	assets := map[string]asset{}
	_ = fs.WalkDir(files, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets[strings.TrimPrefix(p, "ui/")] = asset{body: b, contentType: ct}
		return nil
	})
	assets[""] = assets["index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range SecurityHeaders {
			w.Header().Set(k, v)
		}
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		a, found := assets[name]
		if !ok || !found {
			http.Error(w, "no such file in the dashboard; open "+Prefix, http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard's files answer GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(a.body)
	})
}

// Serves says whether the admin API should hand r to Handler: its path is
// Prefix, below it, or Prefix without its slash (redirected).
func Serves(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, Prefix) || r.URL.Path == strings.TrimSuffix(Prefix, "/")
}
