package ratelimit_test

import (
	"testing"

	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/ratelimit/limitertest"
)

// Local keeps the Limiter contract that every implementation shares.
func TestLocalContract(t *testing.T) {
	t.Parallel()
	limitertest.Run(t, func(_ *testing.T, cfg ratelimit.Config) ratelimit.Limiter { return ratelimit.NewLocal(cfg) }, 0)
}
