package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// The test vector published with the Standard Webhooks reference libraries:
// a receiver's off-the-shelf library verifies what Seawall signs.
func TestSignMatchesTheStandardVector(t *testing.T) {
	key, err := Key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	bare, _ := Key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if string(bare) != string(key) {
		t.Error("the whsec_ prefix must be optional")
	}
}

func TestKeyRejectsBadSecrets(t *testing.T) {
	for _, s := range []string{"", "not base64!", "whsec_c2hvcnQ="} {
		if _, err := Key(s); err == nil {
			t.Errorf("Key(%q) accepted", s)
		}
	}
}

func TestVerify(t *testing.T) {
	key, _ := Key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"job.succeeded"}`)
	h := http.Header{}
	SetHeaders(h, key, "job-1", now, body)
	if err := Verify(key, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify of a fresh signature: %v", err)
	}
	h2 := h.Clone()
	h2.Set(HeaderSignature, "v1,bm9wZQ== "+h.Get(HeaderSignature))
	if err := Verify(key, h2, body, now, time.Minute); err != nil {
		t.Errorf("one of several signatures matching must verify: %v", err)
	}
	cases := map[string]struct {
		h    http.Header
		body []byte
		now  time.Time
		want error
	}{
		"tampered body": {h, []byte(`{"type":"job.dead"}`), now, ErrSignature},
		"too old":       {h, body, now.Add(6 * time.Minute), ErrTimestamp},
		"no headers":    {http.Header{}, body, now, ErrMissingHeaders},
	}
	for name, c := range cases {
		if err := Verify(key, c.h, c.body, c.now, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
	other, _ := Key("whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err := Verify(other, h, body, now, time.Minute); !errors.Is(err, ErrSignature) {
		t.Errorf("another key: %v", err)
	}
}
