/* tool.S: the slhook tool inside slhook.cgi.
 *
 * SLH_TOOL_FILE (set by the Makefile) is the built slhook, its debug
 * information stripped. slhook.cgi runs it from memory to deliver
 * (lib/kick.h), so that the CGI program alone relays. The bytes get a
 * section of their own, out of the way of the data the receive path reads:
 * pages nobody touches are never faulted in, so they cost a request
 * nothing.
 */
        .section slh_tool, "a"
        .balign 4096
        .globl slh_tool_elf
        .type slh_tool_elf, @object
slh_tool_elf:
        .incbin SLH_TOOL_FILE
        .globl slh_tool_elf_end
slh_tool_elf_end:
        .size slh_tool_elf, slh_tool_elf_end - slh_tool_elf

        .section .note.GNU-stack, "", @progbits
