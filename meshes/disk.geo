// Disk of radius R centred at 0, mesh size h.
// pdeflow generates it with `pdeflow mesh disk` (R from pdeflow/shapes.py, h = 6/n written in front
// of this file); by hand: gmsh -2 disk.geo -setnumber h 0.25 -o disk.msh
DefineConstant[ R = 3, h = 0.5 ];

Point(1) = {0, 0, 0, h};
Point(2) = {R, 0, 0, h};
Point(3) = {0, R, 0, h};
Point(4) = {-R, 0, 0, h};
Point(5) = {0, -R, 0, h};
Circle(1) = {2, 1, 3};
Circle(2) = {3, 1, 4};
Circle(3) = {4, 1, 5};
Circle(4) = {5, 1, 2};
Curve Loop(1) = {1, 2, 3, 4};
Plane Surface(1) = {1};

Mesh.MeshSizeMax = h;
Physical Curve("boundary", 1) = {1, 2, 3, 4};
Physical Surface("domain", 1) = {1};
