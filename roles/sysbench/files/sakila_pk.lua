-- Copyright (c) cloudpatterns.mysql developers
-- SPDX-License-Identifier: Apache-2.0
--
-- sysbench script: the HTTP workload of the benchmark sent straight to a SQL node, so the report can put
-- the request path (gatekeeper -> trusted host -> proxy) beside the database alone. One event is one
-- statement, in autocommit, as the proxy sends it; the text protocol, as PyMySQL uses it.
--
--   sysbench sakila_pk.lua --mysql-db=sakila --table-size=599 --workload=mix --threads=16 --time=30 run
--
--   --workload=pk    primary-key reads of sakila's customer table
--   --workload=mix   8 such reads and 2 updates of last_update per 10 events (the HTTP mix file's order)
--   --table-size=N   customer ids are drawn from id_min..N (--rand-type sets the distribution)
-- --tables is accepted and ignored: the sysbench module passes it to every script.

sysbench.cmdline.options = {
   workload = {"pk (primary-key reads) or mix (8 reads, 2 updates per 10 events)", "pk"},
   id_min = {"Smallest customer id", 1},
   table_size = {"Largest customer id", 599},
   tables = {"Ignored (the workload reads one table)", 1},
}

local READ = "SELECT customer_id, first_name, last_name, email FROM customer WHERE customer_id = %d LIMIT 1"
local WRITE = "UPDATE customer SET last_update = NOW() WHERE customer_id = %d"
-- Positions of the updates within a cycle of 10, as in sakila_read_write_mix.jsonl.
local WRITE_AT = {[5] = true, [10] = true}

function thread_init()
   if sysbench.opt.workload ~= "pk" and sysbench.opt.workload ~= "mix" then
      error("sakila_pk.lua: --workload must be pk or mix, got " .. tostring(sysbench.opt.workload))
   end
   drv = sysbench.sql.driver()
   con = drv:connect()
   position = 0
end

function event()
   position = position % 10 + 1
   local id = sysbench.rand.default(sysbench.opt.id_min, sysbench.opt.table_size)
   if sysbench.opt.workload == "mix" and WRITE_AT[position] then
      con:query(string.format(WRITE, id))
   else
      con:query(string.format(READ, id))
   end
end

function thread_done()
   con:disconnect()
end
