// Annulus r <= |x| <= R centred at 0, mesh size h (a curved, not simply connected domain).
// pdeflow generates it with `pdeflow mesh annulus`; by hand: gmsh -2 annulus.geo -setnumber h 0.25
DefineConstant[ r = 1, R = 3, h = 0.5 ];

Point(1) = {0, 0, 0, h};
Point(2) = {R, 0, 0, h};
Point(3) = {0, R, 0, h};
Point(4) = {-R, 0, 0, h};
Point(5) = {0, -R, 0, h};
Point(6) = {r, 0, 0, h};
Point(7) = {0, r, 0, h};
Point(8) = {-r, 0, 0, h};
Point(9) = {0, -r, 0, h};
Circle(1) = {2, 1, 3};
Circle(2) = {3, 1, 4};
Circle(3) = {4, 1, 5};
Circle(4) = {5, 1, 2};
Circle(5) = {6, 1, 7};
Circle(6) = {7, 1, 8};
Circle(7) = {8, 1, 9};
Circle(8) = {9, 1, 6};
Curve Loop(1) = {1, 2, 3, 4};
Curve Loop(2) = {5, 6, 7, 8};
Plane Surface(1) = {1, 2};

Mesh.MeshSizeMax = h;
Physical Curve("outer", 1) = {1, 2, 3, 4};
Physical Curve("inner", 2) = {5, 6, 7, 8};
Physical Surface("domain", 1) = {1};
