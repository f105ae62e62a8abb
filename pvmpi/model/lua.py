"""OpenPV's Lua params files, run as OpenPV built with Lua runs them: the script builds a table of
groups with the ``PVModule`` API and prints it as params text, which pvmpi reads as any ``.params``
file. Lua comes from ``lupa``; ``PVModule`` is pvmpi's own (below), so a tutorial runs unchanged
without OpenPV's repository: ``require "PVModule"`` finds it first.

pvmpi's ``PVModule`` prints the groups in the order the script added them (the HyPerCol first) and
each group's parameters sorted by name, so a script gives the same params file every time (OpenPV's
prints Lua's table order, which varies from run to run).
"""

from ..errors import PvmpiError

# The API OpenPV's parameterWrapper/PVModule.lua offers (addGroup, addMultiGroups, deepCopy,
# batchSweep, paramSweep, createParamsFileString, printConsole; the globals infinity/INFINITY),
# written for pvmpi from its documented behaviour.
PVMODULE = r"""
local M = {}
infinity = math.huge
INFINITY = math.huge
local added = setmetatable({}, {__mode = "k"})   -- parameterTable -> keys in the order added

local function value(v)
   local t = type(v)
   if t == "function" then return "NULL" end
   if t == "table" then
      local parts = {}
      for i = 1, #v do parts[i] = value(v[i]) end
      return "[" .. table.concat(parts, ", ") .. "]"
   end
   if t == "string" then return '"' .. v .. '"' end
   if t == "boolean" then return v and "true" or "false" end
   if v == math.huge then return "infinity" end
   if v == -math.huge then return "-infinity" end
   return tostring(v)
end

local function sorted_keys(t, skip)
   local keys = {}
   for k in pairs(t) do if k ~= skip then keys[#keys + 1] = k end end
   table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
   return keys
end

local function group_text(out, key, g)
   if type(g) ~= "table" or g.groupType == nil then
      error("group " .. tostring(key) .. " has no groupType", 0)
   end
   if g.groupType == "BatchSweep" or g.groupType == "ParameterSweep" then
      out[#out + 1] = g.groupType .. " " .. key .. "  = {\n"
      for i = 1, #g do out[#out + 1] = "    " .. value(g[i]) .. ";\n" end
   else
      out[#out + 1] = g.groupType .. ' "' .. key .. '" = {\n'
      for _, k in ipairs(sorted_keys(g, "groupType")) do
         out[#out + 1] = "    " .. k .. " = " .. value(g[k]) .. ";\n"
      end
   end
   out[#out + 1] = "};\n\n"
end

local function ordered(params)
   local order, seen = {}, {}
   for _, k in ipairs(added[params] or {}) do
      if params[k] ~= nil and not seen[k] then order[#order + 1] = k; seen[k] = true end
   end
   for _, k in ipairs(sorted_keys(params)) do   -- groups put in the table directly
      if not seen[k] then order[#order + 1] = k; seen[k] = true end
   end
   return order
end

function M.deepCopy(obj, seen)
   if type(obj) ~= "table" then return obj end
   seen = seen or {}
   if seen[obj] then error("deepCopy: a table contains itself", 0) end
   local copy = setmetatable({}, getmetatable(obj))
   seen[obj] = copy
   for k, v in pairs(obj) do copy[M.deepCopy(k, seen)] = M.deepCopy(v, seen) end
   seen[obj] = nil
   return copy
end

function M.addGroup(params, key, group, overwrites)
   assert(type(params) == "table" and type(group) == "table")
   if params[key] ~= nil then error("group " .. key .. " already exists", 0) end
   local g = M.deepCopy(group)
   for k, v in pairs(overwrites or {}) do
      if g[k] == nil then
         error("overwrite of " .. k .. ", which " .. tostring(g.groupType) .. ' "' .. key .. '" does not have', 0)
      end
      g[k] = M.deepCopy(v)
   end
   params[key] = g
   added[params] = added[params] or {}
   table.insert(added[params], key)
end

function M.addMultiGroups(params, groups)
   for _, k in ipairs(sorted_keys(groups)) do M.addGroup(params, k, groups[k]) end
end

local function sweep(params, kind, group, param, values)
   local s = {groupType = kind}
   for i, v in ipairs(values) do s[i] = v end
   M.addGroup(params, string.format('"%s":%s', group, param), s)
end

function M.batchSweep(params, group, param, values) sweep(params, "BatchSweep", group, param, values) end
function M.paramSweep(params, group, param, values) sweep(params, "ParameterSweep", group, param, values) end

function M.createParamsFileString(params)
   local out = {"debugParsing = " .. value(debugParsing == nil and true or debugParsing) .. ";\n"}
   local order = ordered(params)
   for _, k in ipairs(order) do
      if type(params[k]) == "table" and params[k].groupType == "HyPerCol" then group_text(out, k, params[k]) end
   end
   for _, k in ipairs(order) do
      if not (type(params[k]) == "table" and params[k].groupType == "HyPerCol") then
         group_text(out, k, params[k])
      end
   end
   return table.concat(out)
end

function M.printConsole(params) io.write(M.createParamsFileString(params)) end

return M
"""


def params_text_of(path):
    """The params text a Lua params file prints, run in the working directory (as OpenPV runs it)."""
    try:
        import lupa
    except ImportError:
        raise PvmpiError("running a Lua params file needs the lupa package", file=path,
                         hint="pip install lupa") from None
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise PvmpiError(f"cannot read Lua params file: {e.strerror}", file=path) from None
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    printed = []
    lua.globals().pvmpi_write = lambda text: printed.append(str(text))
    lua.execute("print = function(...) local p = {} for i = 1, select('#', ...) do p[i] = tostring(select(i, ...)) end "
                "pvmpi_write(table.concat(p, '\\t') .. '\\n') end\n"
                "io.write = function(...) for i = 1, select('#', ...) do pvmpi_write(tostring(select(i, ...))) end end")
    lua.globals().package.preload["PVModule"] = lua.eval("function() return (function() " + PVMODULE + " end)() end")
    try:
        lua.execute(source)
    except lupa.LuaError as e:
        message = str(e).strip().splitlines()[0]
        raise PvmpiError(f"the Lua script failed: {message}", file=path) from None
    text = "".join(printed)
    if not text.strip():
        raise PvmpiError("the Lua script printed no params", file=path,
                         hint="a params script ends with pv.printConsole(params)")
    return text
