package acl

import "testing"

// FuzzParseCredentials: any bytes as a credentials file parse or fail
// with an error; never a panic, and what parses verifies its own entries
// only with their secrets.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"credentials": [{"principal": "a", "secret": "s"}]}`))
	f.Add([]byte(`{"credentials": []}`))
	f.Add([]byte(`{"credentials": [{"principal": "a", "secret": "s"}, {"principal": "a", "secret": "t"}]}`))
	f.Add([]byte(`{"credentials": [{"principal": "ANY", "secret": "s"}]}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseCredentials(src)
		if err != nil {
			return
		}
		for p := range c.secrets {
			if c.Verify(p, "\x00not-the-secret\x00") == nil {
				t.Fatalf("principal %q verified with a made-up secret", p)
			}
		}
	})
}
