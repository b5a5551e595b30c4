package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/upstream"
)

// modeFor picks a request's access mode: the one it asks for with
// Seawall-Mode where the route allows it, deferred for Prefer:
// respond-async when the job store is open, else the route's.
func modeFor(rt *upstream.Route, r *http.Request, queue bool) (string, error) {
	switch m := headerFirst(r.Header, "Seawall-Mode"); m {
	case "":
		if preferAsync(r.Header) && queue {
			return config.ModeDeferred, nil
		}
		if (rt.Mode == config.ModeAsync || rt.Mode == config.ModeDeferred) && !queue {
			return "", fmt.Errorf("%w: %s needs the job store, which is not open", ErrUnsupportedMode, rt.Mode)
		}
		return rt.Mode, nil
	case config.ModeAsync, config.ModeDeferred:
		if !queue {
			return "", fmt.Errorf("%w: %s needs a route in async or deferred mode, which opens the job store", ErrUnsupportedMode, m)
		}
		return m, nil
	case config.ModeSync:
		return m, nil
	case config.ModeCached:
		if rt.Cache == nil {
			return "", fmt.Errorf("%w: route %s has no cache configured", ErrUnsupportedMode, rt.Name)
		}
		return m, nil
	default:
		return "", fmt.Errorf("%w: %q (this Seawall serves sync, cached, async and deferred)", ErrUnsupportedMode, truncate(m, 40))
	}
}

// preferAsync reports whether the request carries Prefer: respond-async
// (RFC 7240), among other preferences or not.
func preferAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}
