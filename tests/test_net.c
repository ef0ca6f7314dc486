/* test_net.c: CIDR parsing and REMOTE_ADDR matching. */
#include "net.h"

#include "check.h"

/* Parses text, expecting success; the block goes to *out. */
static int
parse_ok(const char *text, struct slh_cidr *out)
{
    struct slh_error err = {0};
    enum slh_err rc = slh_cidr_parse(out, text, &err);

    return CHECK(rc == SLH_OK, "parse '%s': %s", text, err.text);
}

static void
parse_bad(const char *text, const char *want_text)
{
    struct slh_error err = {0};
    struct slh_cidr c, before;
    enum slh_err rc;

    memset(&c, 0xab, sizeof(c));
    before = c;
    rc = slh_cidr_parse(&c, text, &err);
    CHECK(rc == SLH_EINVAL && err.code == SLH_EINVAL,
          "parse '%s' should fail, got %d", text ? text : "(null)", rc);
    CHECK(memcmp(&c, &before, sizeof(c)) == 0, "'%s' touched *out on failure",
          text ? text : "(null)");
    if (want_text != NULL)
        CHECK(strstr(err.text, want_text) != NULL,
              "'%s': message '%s' lacks '%s'", text ? text : "(null)", err.text,
              want_text);
}

/* True when addr matches the single block text. */
static bool
in_block(const char *block, const char *addr)
{
    struct slh_cidr c;

    if (slh_cidr_parse(&c, block, NULL) != SLH_OK)
        return false;
    return slh_cidr_match(&c, 1, addr);
}

static void
expect_in(const char *block, const char *addr)
{
    CHECK(in_block(block, addr), "%s should contain %s", block, addr);
}

static void
expect_out(const char *block, const char *addr)
{
    struct slh_cidr c;

    CHECK(slh_cidr_parse(&c, block, NULL) == SLH_OK &&
              !slh_cidr_match(&c, 1, addr),
          "%s should not contain %s", block, addr);
}

static void
test_parse(void)
{
    struct slh_cidr c;
    static const unsigned char mapped_142[16] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 142, 0, 176, 0};
    static const unsigned char v6_2001db8[16] = {0x20, 0x01, 0x0d, 0xb8};
    static const unsigned char zero[16] = {0};

    if (parse_ok("142.0.176.0/20", &c)) {
        CHECK(c.prefix == 116, "v4 /20 stored as %u, want 116", c.prefix);
        CHECK(memcmp(c.addr, mapped_142, 16) == 0, "v4 stored mapped");
    }
    if (parse_ok("52.152.150.178", &c))
        CHECK(c.prefix == 128, "bare v4 is /32 (+96), got %u", c.prefix);
    if (parse_ok("2001:db8::/32", &c)) {
        CHECK(c.prefix == 32, "v6 /32 prefix %u", c.prefix);
        CHECK(memcmp(c.addr, v6_2001db8, 16) == 0, "v6 address bytes");
    }
    if (parse_ok("::1", &c))
        CHECK(c.prefix == 128 && c.addr[15] == 1, "bare v6 is /128");
    if (parse_ok("0.0.0.0/0", &c))
        CHECK(c.prefix == 96, "v4 /0 is /96, got %u", c.prefix);
    if (parse_ok("::/0", &c))
        CHECK(c.prefix == 0 && memcmp(c.addr, zero, 16) == 0, "::/0");
    if (parse_ok("10.1.2.3/32", &c))
        CHECK(c.prefix == 128, "v4 /32 is /128");
    if (parse_ok("2001:db8::1/128", &c))
        CHECK(c.prefix == 128, "v6 /128");
    if (parse_ok("::ffff:142.0.176.0/116", &c))
        CHECK(c.prefix == 116 && memcmp(c.addr, mapped_142, 16) == 0,
              "mapped v6 notation is the same block");
    parse_ok("fe80::/10", &c);
    parse_ok("255.255.255.255/32", &c);
    parse_ok("128.0.0.0/1", &c);

    /* Host bits beyond the prefix are a typo guard. */
    parse_bad("142.0.177.0/20", "network is 142.0.176.0/20");
    parse_bad("10.0.0.1/8", "host bits");
    parse_bad("2001:db8::1/64", "network is 2001:db8::/64");
    parse_bad("0.0.0.1/0", "host bits");
    parse_bad("::1/127", "host bits");

    /* Garbage. */
    parse_bad(NULL, NULL);
    parse_bad("", "not an IP address");
    parse_bad("/24", "not an IP address");
    parse_bad("10.0.0.0/", "prefix");
    parse_bad("10.0.0.0/33", "over 32");
    parse_bad("::/129", "over 128");
    parse_bad("10.0.0.0/-1", "prefix");
    parse_bad("10.0.0.0/+8", "prefix");
    parse_bad("10.0.0.0/8x", "prefix");
    parse_bad("10.0.0.0/0008", "prefix");
    parse_bad("10.0.0.0/8/8", "prefix");
    parse_bad("10.0.0.0 /8", "not an IP address");
    parse_bad("10.0.0.256", "not an IP address");
    parse_bad("10.0.0", "not an IP address");
    parse_bad("10.0.0.0.0", "not an IP address");
    parse_bad("010.0.0.0", "not an IP address");
    parse_bad("1.2.3.4 ", "not an IP address");
    parse_bad("example.com", "not an IP address");
    parse_bad("fe80::1%eth0", "not an IP address");
    parse_bad("2001:db8:::1", "not an IP address");
    parse_bad("[::1]", "not an IP address");
    parse_bad("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:"
              "dddd:eeee:ffff:0000/64",
              "not an IP address");
}

static void
test_match(void)
{
    struct slh_cidr blocks[3];
    struct slh_cidr none[1];

    /* SocketLabs' published range. */
    expect_in("142.0.176.0/20", "142.0.176.0");
    expect_in("142.0.176.0/20", "142.0.180.1");
    expect_in("142.0.176.0/20", "142.0.191.255");
    expect_out("142.0.176.0/20", "142.0.192.0");
    expect_out("142.0.176.0/20", "142.0.175.255");
    expect_in("142.0.176.0/20", "::ffff:142.0.180.1");
    expect_in("142.0.176.0/20", "::FFFF:8e00:b401");
    expect_out("142.0.176.0/20", "::ffff:142.0.192.0");
    expect_out("142.0.176.0/20", "::142.0.180.1"); /* IPv4-compatible */
    expect_out("142.0.176.0/20", "2001:db8::8e00:b401");

    /* Single hosts. */
    expect_in("52.152.150.178", "52.152.150.178");
    expect_out("52.152.150.178", "52.152.150.179");
    expect_in("52.152.150.178/32", "::ffff:52.152.150.178");
    expect_in("2001:db8::1", "2001:db8::1");
    expect_in("2001:db8::1/128", "2001:0db8:0000::0001");
    expect_out("2001:db8::1/128", "2001:db8::2");

    /* Prefix lengths that are not byte multiples, at the edges. */
    expect_in("128.0.0.0/1", "255.255.255.255");
    expect_out("128.0.0.0/1", "127.255.255.255");
    expect_in("10.0.0.0/31", "10.0.0.1");
    expect_out("10.0.0.0/31", "10.0.0.2");
    expect_in("2001:db8::/33", "2001:db8:7fff::1");
    expect_out("2001:db8::/33", "2001:db8:8000::1");

    /* /0 of each family. */
    expect_in("0.0.0.0/0", "1.2.3.4");
    expect_in("0.0.0.0/0", "255.255.255.255");
    expect_out("0.0.0.0/0", "2001:db8::1");
    expect_in("::/0", "2001:db8::1");
    expect_in("::/0", "1.2.3.4"); /* every address is in ::/0 */

    /* Zones are stripped; an IPv4 address has none. */
    expect_in("fe80::/10", "fe80::1%eth0");
    expect_in("fe80::/10", "fe80::1%");
    expect_out("fe80::/10", "fec0::1%eth0");
    expect_out("0.0.0.0/0", "1.2.3.4%eth0");

    /* Garbage matches nothing, even /0. */
    expect_out("::/0", "");
    expect_out("::/0", "not an address");
    expect_out("::/0", "1.2.3.4 ");
    expect_out("::/0", " 1.2.3.4");
    expect_out("::/0", "1.2.3.4:80");
    expect_out("::/0", "[::1]");
    expect_out("::/0", "1.2.3.4/32");
    expect_out("::/0", "%eth0");
    expect_out("::/0", "::1::");
    expect_out("0.0.0.0/0", "1.2.3");

    /* Several blocks. */
    CHECK(slh_cidr_parse(&blocks[0], "142.0.176.0/20", NULL) == SLH_OK &&
              slh_cidr_parse(&blocks[1], "52.152.150.178", NULL) == SLH_OK &&
              slh_cidr_parse(&blocks[2], "2001:db8::/32", NULL) == SLH_OK,
          "three blocks parse");
    CHECK(slh_cidr_match(blocks, 3, "52.152.150.178"), "second block");
    CHECK(slh_cidr_match(blocks, 3, "2001:db8:1::5"), "third block");
    CHECK(slh_cidr_match(blocks, 3, "142.0.181.9"), "first block");
    CHECK(!slh_cidr_match(blocks, 3, "8.8.8.8"), "in none");
    CHECK(!slh_cidr_match(blocks, 2, "2001:db8:1::5"), "n limits the search");
    CHECK(!slh_cidr_match(blocks, 0, "142.0.181.9"), "no blocks, no match");
    CHECK(!slh_cidr_match(NULL, 0, "1.2.3.4"), "NULL blocks");
    CHECK(!slh_cidr_match(blocks, 3, NULL), "NULL address");
    memset(none, 0, sizeof(none));
    CHECK(slh_cidr_match(none, 1, "8.8.8.8"), "a zeroed block is ::/0");
}

int
main(void)
{
    /* check.h's helpers are static; this test needs no files. */
    (void)check_slurp;
    (void)check_fixtures;
    test_parse();
    test_match();
    return check_summary();
}
