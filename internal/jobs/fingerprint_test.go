package jobs

import "testing"

// FuzzFingerprint: a fingerprint is stable, and two requests that differ
// in method, path or body never share one, however the bytes are moved
// between the fields.
func FuzzFingerprint(f *testing.F) {
	f.Add("POST", "/v1/orders", []byte(`{"sku":7}`), "POST", "/v1/orders", []byte(`{"sku":8}`))
	f.Add("POST", "/a", []byte("b"), "POST", "/ab", []byte(""))
	f.Add("GET", "/x?q=1", []byte(nil), "GET", "/x?q=2", []byte(nil))
	f.Fuzz(func(t *testing.T, m1, p1 string, b1 []byte, m2, p2 string, b2 []byte) {
		a, b := Fingerprint(m1, p1, b1), Fingerprint(m2, p2, b2)
		if a != Fingerprint(m1, p1, b1) {
			t.Fatal("fingerprint not stable")
		}
		same := m1 == m2 && p1 == p2 && string(b1) == string(b2)
		if same != (a == b) {
			t.Fatalf("(%q %q %q) and (%q %q %q): same request %v, same fingerprint %v", m1, p1, b1, m2, p2, b2, same, a == b)
		}
	})
}

func TestScopeOf(t *testing.T) {
	for _, tt := range []struct{ method, path, caller, want string }{
		{"POST", "/v1/orders", "a1", "POST /v1/orders caller=a1"},
		{"POST", "/v1/orders?x=1", "a1", "POST /v1/orders caller=a1"},
		{"POST", "/v1/orders", "b2", "POST /v1/orders caller=b2"},
		{"PUT", "/v1/orders", "a1", "PUT /v1/orders caller=a1"},
	} {
		if got := ScopeOf(tt.method, tt.path, tt.caller); got != tt.want {
			t.Errorf("ScopeOf(%s, %s, %s) = %q, want %q", tt.method, tt.path, tt.caller, got, tt.want)
		}
	}
}

// FuzzParsePublicID: the public id parser never panics, accepts only
// what PublicID makes, and gives back the parts it was made from.
func FuzzParsePublicID(f *testing.F) {
	for _, s := range []string{"1-00112233445566778899aabbccddeeff", "1", "-", "0-", "9223372036854775807-x", "1-" + NewToken() + "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, token, ok := ParsePublicID(s)
		if !ok {
			return
		}
		j := Job{ID: id, Delivery: Delivery{Token: token}}
		if id <= 0 || len(token) != 2*tokenBytes || !j.Owns(token) {
			t.Fatalf("ParsePublicID(%q) = %d, %q", s, id, token)
		}
		if back, _ := ParseID(s); back != id {
			t.Fatalf("ParseID(%q) = %d, want %d", s, back, id)
		}
	})
}

// A job's delivery key: the app's key, else its own random one, else (a
// job stored before delivery keys existed) the key it was first delivered
// with, so that the vendor still folds its repeats after an upgrade.
func TestDeliveryKey(t *testing.T) {
	random := NewDeliveryKey()
	for _, tt := range []struct {
		d    Delivery
		want string
	}{
		{Delivery{IdempotencyKey: "order-7", DeliveryKey: random}, "order-7"},
		{Delivery{DeliveryKey: random}, random},
		{Delivery{}, "seawall-job-42"},
	} {
		if got := tt.d.deliveryKey(42); got != tt.want {
			t.Errorf("%+v: key %q, want %q", tt.d, got, tt.want)
		}
	}
	if other := NewDeliveryKey(); other == random || len(random) != len("seawall-")+32 {
		t.Errorf("delivery keys %q and %q: want two different keys of 128 random bits", random, other)
	}
	var stored Delivery // as an earlier version wrote it: no delivery_key
	if err := decodeArgs([]byte(`{"upstream":"api","method":"POST","path":"/v1/x"}`), &stored); err != nil || stored.deliveryKey(9) != "seawall-job-9" {
		t.Errorf("a job stored before delivery keys: %v, key %q; want seawall-job-9", err, stored.deliveryKey(9))
	}
}
