package uppercase_test

import (
	"fmt"

	"github.com/udpd/udpd/service/uppercase"
)

func ExampleAppend() {
	fmt.Printf("%s\n", uppercase.Append(nil, []byte("straße, ﬁsh")))
	// Invalid UTF-8 passes through; the prefix in dst is kept.
	fmt.Printf("%q\n", uppercase.Append([]byte("> "), []byte("caf\xc3\xa9 \xff")))
	// Output:
	// STRASSE, FISH
	// "> CAFÉ \xff"
}

func ExampleInPlace() {
	b := []byte("hello")
	fmt.Println(uppercase.InPlace(b), string(b))
	b = []byte("straße")
	fmt.Println(uppercase.InPlace(b), string(b))
	// Output:
	// true HELLO
	// false straße
}
