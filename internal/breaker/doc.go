// Package breaker is a circuit breaker that judges an upstream by its failure
// rate and its slow-call rate over a sliding time window.
//
// Closed, it lets calls through and records their outcomes. Once the window
// holds at least MinCalls calls and either rate reaches its threshold, it
// opens: calls are refused with an *OpenError (ErrOpen) and no upstream call
// is made. After OpenDuration it lets HalfOpenCalls probes through; if all
// succeed it closes, and if one fails it reopens for twice as long, up to
// MaxOpenDuration. A call whose caller went away is recorded as neither.
package breaker
