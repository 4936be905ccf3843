// L-shaped domain [-a, a]^2 minus (0, a]^2: a re-entrant corner at the origin, mesh size h.
// pdeflow generates it with `pdeflow mesh lshape`; by hand: gmsh -2 lshape.geo -setnumber h 0.25
DefineConstant[ a = 3, h = 0.5 ];

Point(1) = {-a, -a, 0, h};
Point(2) = {a, -a, 0, h};
Point(3) = {a, 0, 0, h};
Point(4) = {0, 0, 0, h};
Point(5) = {0, a, 0, h};
Point(6) = {-a, a, 0, h};
Line(1) = {1, 2};
Line(2) = {2, 3};
Line(3) = {3, 4};
Line(4) = {4, 5};
Line(5) = {5, 6};
Line(6) = {6, 1};
Curve Loop(1) = {1, 2, 3, 4, 5, 6};
Plane Surface(1) = {1};

Mesh.MeshSizeMax = h;
Physical Curve("boundary", 1) = {1, 2, 3, 4, 5, 6};
Physical Surface("domain", 1) = {1};
