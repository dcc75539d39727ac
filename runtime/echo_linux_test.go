package runtime

import "testing"

// TestEchoesInput: the master's view of the slave's termios follows what
// the program sets: cooked echo until it turns it off, as a line editor
// does.
func TestEchoesInput(t *testing.T) {
	c := start(t, Spec{Args: sh(`echo state-$((1+1)); read x; stty -icanon -echo; echo state-$((2+1)); read y`)})
	o := readAll(c)
	o.waitFor(t, "state-2")
	if on, err := c.EchoesInput(); err != nil || !on {
		t.Fatalf("a fresh pty: EchoesInput %v, %v; want true", on, err)
	}
	if _, err := c.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "state-3")
	if on, err := c.EchoesInput(); err != nil || on {
		t.Fatalf("after stty -icanon -echo: EchoesInput %v, %v; want false", on, err)
	}
}
