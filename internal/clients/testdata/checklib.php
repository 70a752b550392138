<?php
// Shared by the PHP client scripts: one "ok NAME" or "FAIL NAME: ..." line
// per check on stdout (see ../doc.go). Session output is buffered, so
// nothing is printed before the session starts (PHP refuses to start one
// after output).

function check(string $name, $got, $want): void
{
    global $results;
    if ($got === $want) {
        $results[] = "ok $name";
    } else {
        $results[] = "FAIL $name: got " . substr(json_encode($got), 0, 300) . ", want " . substr(json_encode($want), 0, 300);
    }
}

function run(string $name, callable $fn): void
{
    global $results;
    try {
        $fn();
    } catch (Throwable $e) {
        $results[] = "FAIL $name: " . get_class($e) . ": " . $e->getMessage();
        fwrite(STDERR, $e->getTraceAsString() . "\n");
    }
}

function report(): void
{
    global $results;
    echo implode("\n", $results), "\n";
}

$results = [];
set_error_handler(function ($no, $str, $file, $line) {
    fwrite(STDERR, "php: $str at $file:$line\n");
    return true;
});
