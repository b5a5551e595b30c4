// Package breaker is a circuit breaker that judges an upstream by its failure
// rate and its slow-call rate over a sliding time window.
//
// Closed, it lets calls through and records their outcomes. Once the window
// holds at least MinCalls calls and either rate reaches its threshold, it
// opens: calls are refused with an *OpenError (ErrOpen) and no upstream call
// is made. After OpenDuration it lets HalfOpenCalls probes through, one
// after another; it closes once their failure and slow-call rates are sure
// to stay under the thresholds, and reopens for twice as long (up to
// MaxOpenDuration) once one of them is sure to reach its threshold. A call
// whose caller went away is recorded as neither.
package breaker
