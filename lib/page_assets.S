/* page_assets.S: the operator's page's files inside the binary (page.h).
 *
 * The Makefile puts them, and a gzip -9 -n copy of each, in $(B)/web/ and
 * passes that directory to the assembler (-I): the page as written in web/
 * (with each asset's URL carrying a hash of its bytes), and uPlot's dist
 * files from web/node_modules (npm ci, web/package-lock.json). page.c
 * serves them; a program that never serves the page still carries them,
 * read-only pages nobody touches.
 */
        .macro asset name, file
        .globl slh_asset_\name
        .type slh_asset_\name, @object
slh_asset_\name:
        .incbin "\file"
        .globl slh_asset_\name\()_end
slh_asset_\name\()_end:
        .size slh_asset_\name, slh_asset_\name\()_end - slh_asset_\name
        .endm

        .section .rodata.slh_page, "a"
        asset page_html, "page.html"
        asset page_html_gz, "page.html.gz"
        asset events_html, "events.html"
        asset events_html_gz, "events.html.gz"
        asset page_css, "page.css"
        asset page_css_gz, "page.css.gz"
        asset page_js, "page.js"
        asset page_js_gz, "page.js.gz"
        asset uplot_js, "uPlot.iife.min.js"
        asset uplot_js_gz, "uPlot.iife.min.js.gz"
        asset uplot_css, "uPlot.min.css"
        asset uplot_css_gz, "uPlot.min.css.gz"

        .section .note.GNU-stack, "", @progbits
