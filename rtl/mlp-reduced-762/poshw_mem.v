// poshw_mem: one synchronous read port, one write port with lane enables.
// Read data appears the cycle after the address; a same-address write returns the old data.
// Initial contents come from INIT_FILE through $readmemh (no literals in the netlist).
// Hand-kept primitive written by `poshw compile` (poshw/hw/mem.py).
`default_nettype none
module poshw_mem #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer ABITS = 4,
    parameter integer LANES = 1,
    parameter INIT_FILE = "",
    parameter integer SMALL_BITS = 1024
) (
    input  wire             clk,
    input  wire [ABITS-1:0] raddr,
    output reg  [WIDTH-1:0] rdata,
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [LANES-1:0] wen
);
    localparam integer GRAN = WIDTH / LANES;
    integer i;
    generate if (WIDTH * DEPTH <= SMALL_BITS) begin : g_logic
        // a few hundred bits: flip-flops / LUTs rather than a whole 4-kbit block RAM
        (* ram_style = "logic", logic_block = 1 *) reg [WIDTH-1:0] mem [0:DEPTH-1];
        initial begin
`ifndef SYNTHESIS
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
            rdata = {WIDTH{1'b0}};
`endif
            if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
        end
        always @(posedge clk) begin
            rdata <= mem[raddr];
            for (i = 0; i < LANES; i = i + 1)
                if (wen[i]) mem[waddr][i*GRAN +: GRAN] <= wdata[i*GRAN +: GRAN];
        end
    end else begin : g_bram
        reg [WIDTH-1:0] mem [0:DEPTH-1];
        initial begin
`ifndef SYNTHESIS
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
            rdata = {WIDTH{1'b0}};
`endif
            if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
        end
        always @(posedge clk) begin
            rdata <= mem[raddr];
            for (i = 0; i < LANES; i = i + 1)
                if (wen[i]) mem[waddr][i*GRAN +: GRAN] <= wdata[i*GRAN +: GRAN];
        end
    end endgenerate
endmodule
`default_nettype wire
